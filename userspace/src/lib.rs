//! xdpipe: an AF_XDP packet pipeline and benchmark.
//!
//! Frames flow NIC queue → XDP program (`loader`, steer and count) → AF_XDP RX ring →
//! worker (`worker`) → mode (`modes`) → TX or fill ring. Commands flow the other way:
//! CLI → validated config (`config`) → `run` → workers. Only the binary prints.
#![deny(unsafe_code)]

pub mod accounting;
pub mod anchors;
pub mod config;
pub mod generator;
pub mod guest;
pub mod loader;
pub mod modes;
pub mod net;
pub use net::netdev;
pub mod preflight;
pub mod run;
pub mod stats;
pub mod sys;
pub mod testbed;
pub mod veth;
pub mod wire;
pub mod worker;
pub mod xsk;
