//! Pipeline modes: safe logic over frames. No syscalls, no logging, no allocation per
//! frame; the workers (`worker.rs`) drive the rings around them.
mod parse;

pub use parse::{Parse, ParseSummary};

use crate::{
    wire::headers::EthernetFrame,
    worker::{RxMode, Verdict},
};

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

/// `l2fwd`: swap source and destination MAC and send the frame back out of the queue it
/// came in on. The frame never leaves the UMEM.
#[derive(Default)]
pub struct L2Fwd {
    pub runts: u64,
}

impl RxMode for L2Fwd {
    const TOUCHES_DATA: bool = true;

    #[inline(always)]
    fn on_frame(&mut self, frame: &mut [u8]) -> Verdict {
        match EthernetFrame::new_checked(frame) {
            Ok(mut eth) => {
                eth.swap_macs();
                Verdict::Transmit
            }
            Err(_) => {
                self.runts += 1;
                Verdict::Recycle
            }
        }
    }
}

/// The worker modes `xdpipe run --mode` accepts (a plain config enum, in `config`).
pub use crate::config::ModeKind;
