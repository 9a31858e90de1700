//! Pipeline modes: safe logic over frames. No syscalls, no logging, no allocation per
//! frame; the workers (`worker.rs`) drive the rings around them.
use crate::worker::{RxMode, Verdict};

/// `rxdrop`: count and recycle; frame bytes are never read.
#[derive(Default)]
pub struct RxDrop;

impl RxMode for RxDrop {
    const TOUCHES_DATA: bool = false;

    #[inline(always)]
    fn on_frame(&mut self, _frame: &mut [u8]) -> Verdict {
        Verdict::Recycle
    }
}

/// The worker modes `xdpipe run --mode` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeKind {
    /// Consume and recycle; frame data untouched.
    Rxdrop,
}
