//! Empty library target: aya-build needs one to resolve the package; the program is the
//! `xdpipe-steer` binary in `main.rs`.
#![no_std]
