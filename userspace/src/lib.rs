//! xdpipe: an AF_XDP packet pipeline and benchmark.
//!
//! Frames flow NIC queue → XDP program (`loader`, steer and count) → AF_XDP RX ring →
//! the pipeline's worker loop (`pipeline`) → a stage (`stages`, or a user's) → TX or fill
//! ring. Commands flow the other way: CLI → validated config (`config`) → `run` or a lab
//! command → `pipeline` → workers. The CLI (clap flags and their validation) is the
//! binary's `cli` module: no library module imports clap or derives it, and only the
//! binary prints.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod accounting;
pub mod agent;
pub mod anchors;
pub mod config;
pub mod devbound;
pub mod generator;
pub mod guest;
pub mod kbase;
pub mod knobs;
pub mod loader;
pub mod modes;
pub mod net;
pub mod noise;
pub use net::netdev;
pub mod pipeline;
pub mod preflight;
pub mod run;
pub mod stages;
pub mod stats;
pub mod sys;
pub mod tapgen;
pub mod teardown;
pub mod testbed;
pub mod topology;
pub mod veth;
pub mod wire;
pub mod xsk;
