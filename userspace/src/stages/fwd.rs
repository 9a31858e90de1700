//! `fwd`: send every frame, unchanged, out of the pipeline's out port (port 0): without a
//! copy where the two sockets share a UMEM, else copied by the driver.
use crate::pipeline::{Batch, OutPort, Stage, Verdict};

/// The `fwd` stage.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fwd;

impl Stage for Fwd {
    type Summary = ();
    const TRANSMITS: bool = false;

    #[inline]
    fn on_batch(&mut self, batch: &mut Batch<'_>) {
        batch.set_all(Verdict::Redirect(OutPort(0)));
    }

    fn finish(self) {}
}
