//! `l2fwd`: swap source and destination MAC and send each frame back out of the queue it
//! came in on. The frame never leaves the UMEM. Frames too short for an Ethernet header
//! are dropped and counted.
use serde::Serialize;

use crate::{
    pipeline::{Batch, Stage, Verdict},
    wire::headers::EthernetFrame,
};

/// The `l2fwd` stage.
#[derive(Clone, Copy, Debug, Default)]
pub struct L2Fwd {
    runts: u64,
}

/// What `l2fwd` counted on one queue.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct L2FwdSummary {
    /// Frames too short for an Ethernet header, dropped instead of sent.
    pub runts: u64,
}

impl Stage for L2Fwd {
    type Summary = L2FwdSummary;

    #[inline]
    fn on_batch(&mut self, batch: &mut Batch<'_>) {
        for mut frame in batch.frames() {
            match EthernetFrame::new_checked(frame.bytes_mut()) {
                Ok(mut eth) => {
                    eth.swap_macs();
                    frame.set_verdict(Verdict::Tx);
                }
                Err(_) => self.runts += 1,
            }
        }
    }

    fn finish(self) -> L2FwdSummary {
        L2FwdSummary { runts: self.runts }
    }
}
