//! `rxdrop`: count and drop; frame bytes are never read. The pipeline counts frames and
//! bytes itself, so the stage has nothing to do: every frame keeps its default verdict,
//! and the driver hands the whole batch back to the fill ring at once.
use crate::pipeline::{Batch, Stage};

/// The `rxdrop` stage.
#[derive(Clone, Copy, Debug, Default)]
pub struct RxDrop;

impl Stage for RxDrop {
    type Summary = ();
    const TRANSMITS: bool = false;

    #[inline(always)]
    fn on_batch(&mut self, _batch: &mut Batch<'_>) {}

    fn finish(self) {}
}
