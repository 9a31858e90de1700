//! The two hooks a user writes: a [`Stage`] over received frames, and a [`Source`] that
//! fills frames for transmission. Neither sees a ring, a descriptor or a syscall: the
//! driver (`driver.rs`) does the ring work in batches around them.
use serde::Serialize;

use crate::xsk::{Batch, TxBatch};

/// Per-queue processing of received frames.
///
/// The pipeline builds one value per queue worker, on that worker's thread (so its tables
/// are allocated where it runs), and calls [`Stage::on_batch`] for every non-empty RX
/// batch. Every frame starts with [`Verdict::Drop`](crate::xsk::Verdict::Drop); the stage
/// sets another verdict on the frames it keeps. When the run ends, [`Stage::finish`]
/// returns the stage's own summary, which the pipeline's summary carries per queue.
///
/// On xdpipe's side of the hook there is no syscall, allocation, lock or log per frame;
/// keep it so on the stage's side too.
pub trait Stage {
    /// What the stage reports at the end (per queue).
    type Summary: Serialize + Send + 'static;

    /// False for a stage that never sets [`Verdict::Tx`](crate::xsk::Verdict::Tx): its
    /// sockets get no TX ring, which in copy mode spares every wakeup a TX pass in the
    /// kernel. A `Tx` verdict from such a stage is dropped and counted as unsendable.
    const TRANSMITS: bool = true;

    /// Looks at (and may rewrite) the frames of one batch and sets their verdicts.
    fn on_batch(&mut self, batch: &mut Batch<'_>);

    /// The stage's summary, once the run has ended.
    fn finish(self) -> Self::Summary;
}

/// What a [`Source`] wants after filling a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceStep {
    /// Call again as soon as there is room.
    Continue,
    /// Nothing more to send before this CLOCK_MONOTONIC time (ns): pacing.
    WaitUntil(u64),
    /// Everything is sent; the worker drains its TX ring and ends.
    Done,
}

/// Per-queue generation of frames to transmit: the transmit side's [`Stage`].
pub trait Source {
    /// What the source reports at the end (per queue).
    type Summary: Serialize + Send + 'static;

    /// Fills up to `batch.remaining()` frames with [`TxBatch::push`]. `now_ns` is
    /// CLOCK_MONOTONIC, read once for the batch.
    fn on_tx(&mut self, batch: &mut TxBatch<'_>, now_ns: u64) -> SourceStep;

    /// The source's summary, once the run has ended.
    fn finish(self) -> Self::Summary;
}
