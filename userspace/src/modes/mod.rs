//! The modes of `xdpipe run --mode`. Each is a stage in [`crate::stages`].

/// The worker modes `xdpipe run --mode` accepts (a plain config enum, in `config`).
pub use crate::config::ModeKind;
