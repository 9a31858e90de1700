//! The stages `xdpipe run --mode` runs, each written on the public [`crate::pipeline`]
//! API as a user's own stage would be: no rings, descriptors or syscalls here.
mod fwd;
mod l2fwd;
mod parse;
mod rxdrop;

pub use fwd::Fwd;
pub use l2fwd::{L2Fwd, L2FwdSummary};
pub use parse::{Parse, ParseSummary};
pub use rxdrop::RxDrop;
