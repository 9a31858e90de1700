//! Records of the device knobs xdpipe changed, so that `xdpipe cleanup` can put them back
//! after a SIGKILL.
//!
//! Every change of a knob (offloads turned off, busy polling's per-NAPI or sysfs values)
//! is undone by a [`crate::teardown`] action on every exit path the process lives
//! through. A SIGKILL ends the process before any of them runs. So before a knob is
//! changed, its old value goes into a record under [`KNOB_DIR`]: the owner's identity (pid
//! and start time, as the testbeds' records), the network namespace the knob lives in
//! (the initial one, or a name under /run/netns) and what restores it. The undo removes
//! the record after it ran. `xdpipe cleanup` restores every record whose owner is gone,
//! and never one whose owner still runs.
use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use serde::{Deserialize, Serialize};

use crate::{
    net::{NetError, ethtool, netdev, ns, sysfs},
    testbed::{Owner, identity, judge_owner, write_record},
};

/// Where the records live (0700, root's).
pub const KNOB_DIR: &str = "/run/xdpipe/knobs";

/// How one changed knob goes back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Restore {
    /// Device features (ethtool): turn these back on, these back off.
    Features {
        /// The device.
        iface: String,
        /// Features to turn back on.
        on: Vec<String>,
        /// Features to turn back off.
        off: Vec<String>,
    },
    /// One NAPI's settings over netdev `napi-set`.
    Napi {
        /// The NAPI id.
        id: u32,
        /// napi_defer_hard_irqs before.
        defer_hard_irqs: Option<u32>,
        /// gro_flush_timeout before, ns.
        gro_flush_timeout_ns: Option<u64>,
        /// irq-suspend-timeout before, ns (only when the run set it: `--irq-suspend-us`).
        #[serde(default)]
        irq_suspend_timeout_ns: Option<u64>,
    },
    /// A file under /sys/class/net and its old content.
    Sysfs {
        /// The path under /sys/class/net (`IFACE/KNOB`).
        rel: String,
        /// The value before.
        value: String,
    },
}

/// A record as stored.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Stored {
    /// "pid starttime" of the process that changed the knobs.
    owner: String,
    /// The namespace: None for the initial one, else its name under /run/netns.
    netns: Option<String>,
    /// What was changed, for messages.
    what: String,
    restore: Vec<Restore>,
}

/// A written record; dropping it removes the file (once the knobs are back).
#[derive(Debug)]
pub struct KnobRecord {
    path: PathBuf,
}

impl Drop for KnobRecord {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The calling thread's network namespace: `Ok(None)` for the initial one, `Ok(Some(name))`
/// for one named under /run/netns, an error for an unnamed one (nothing could enter it
/// after the owner is gone, and it goes with its last process).
fn thread_netns() -> Result<Option<String>, String> {
    let id = |p: &Path| std::fs::metadata(p).map(|m| (m.dev(), m.ino()));
    let me = id(Path::new("/proc/thread-self/ns/net")).map_err(|e| format!("reading this thread's netns: {e}"))?;
    if id(Path::new("/proc/1/ns/net")).is_ok_and(|init| init == me) {
        return Ok(None);
    }
    ns::list()
        .into_iter()
        .find(|n| id(&ns::path(n)).is_ok_and(|x| x == me))
        .map(Some)
        .ok_or_else(|| "an unnamed network namespace (its knobs go with it)".to_owned())
}

/// Records `restore` for the knobs about to change (`what` names them) in the calling
/// thread's namespace. `Ok(None)` in an unnamed namespace, which takes its knobs with it.
/// A record that cannot be written is an error: the change must not go ahead unrecorded.
pub fn record(what: &str, restore: Vec<Restore>) -> std::io::Result<Option<KnobRecord>> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let netns = match thread_netns() {
        Ok(n) => n,
        Err(why) => {
            log::debug!("{what}: not recorded for cleanup: {why}");
            return Ok(None);
        }
    };
    let owner =
        identity(std::process::id()).ok_or_else(|| std::io::Error::other("reading this process's start time"))?;
    let name = format!("{}-{}", owner.replace(' ', "-"), SEQ.fetch_add(1, Ordering::Relaxed));
    let stored = Stored { owner, netns, what: what.to_owned(), restore };
    let text = serde_json::to_string(&stored).map_err(std::io::Error::other)?;
    write_record(KNOB_DIR, &name, &text)?;
    Ok(Some(KnobRecord { path: Path::new(KNOB_DIR).join(name) }))
}

/// Applies one restore in the calling thread's namespace.
fn apply(r: &Restore) -> Result<(), NetError> {
    match r {
        Restore::Features { iface, on, off } => {
            fn names(v: &[String]) -> Vec<&str> {
                v.iter().map(String::as_str).collect()
            }
            if !on.is_empty() {
                ethtool::set_features(iface, &names(on), true)?;
            }
            if !off.is_empty() {
                ethtool::set_features(iface, &names(off), false)?;
            }
            Ok(())
        }
        Restore::Napi { id, defer_hard_irqs, gro_flush_timeout_ns, irq_suspend_timeout_ns } => netdev::Netdev::open()?
            .set(&netdev::NapiConfig {
                id: *id,
                defer_hard_irqs: *defer_hard_irqs,
                gro_flush_timeout_ns: *gro_flush_timeout_ns,
                irq_suspend_timeout_ns: *irq_suspend_timeout_ns,
            }),
        Restore::Sysfs { rel, value } => sysfs::write_net_in(&sysfs::current_netns()?, "this namespace", rel, value),
    }
}

/// Restores the records of owners that are gone and removes them; returns a line per
/// record for the user. Records of running owners are left alone; a record that cannot be
/// read is named and kept.
pub fn restore_orphans() -> Vec<String> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(KNOB_DIR) else { return out };
    for e in dir.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let stored: Stored = match std::fs::read_to_string(&path).map(|t| serde_json::from_str(&t)) {
            Ok(Ok(s)) => s,
            _ => {
                out.push(format!("keeping knob record {name}: unreadable; remove {} by hand", path.display()));
                continue;
            }
        };
        match judge_owner(Some(&stored.owner), identity) {
            Owner::Gone => {}
            _ => continue,
        }
        let run = || -> Result<Vec<String>, NetError> {
            let mut failed = Vec::new();
            for r in &stored.restore {
                // A NAPI or device that went away took its setting with it.
                match apply(r) {
                    Ok(()) => {}
                    Err(e) if matches!(e.errno(), Some(libc::ENOENT) | Some(libc::ENODEV)) => {}
                    Err(e) => failed.push(e.to_string()),
                }
            }
            Ok(failed)
        };
        let result = match &stored.netns {
            None => run(),
            Some(n) if !ns::exists(n) => Ok(Vec::new()),
            Some(n) => ns::with_netns(n, run),
        };
        let where_ = stored.netns.as_deref().map_or(String::new(), |n| format!(" in netns {n}"));
        match result {
            Ok(failed) if failed.is_empty() => {
                let _ = std::fs::remove_file(&path);
                out.push(format!("restored {}{where_} (owner {} is gone)", stored.what, stored.owner));
            }
            Ok(failed) => {
                let _ = std::fs::remove_file(&path);
                out.push(format!("restored {}{where_} in part: {}", stored.what, failed.join("; ")));
            }
            Err(e) => out.push(format!("keeping knob record {name}: {e}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips() {
        let s = Stored {
            owner: "42 1000".into(),
            netns: Some("xdpipe-t-rx".into()),
            what: "offloads of eth9".into(),
            restore: vec![
                Restore::Features { iface: "eth9".into(), on: vec!["rx-gro".into()], off: vec![] },
                Restore::Napi {
                    id: 8193,
                    defer_hard_irqs: Some(0),
                    gro_flush_timeout_ns: Some(0),
                    irq_suspend_timeout_ns: Some(0),
                },
                Restore::Sysfs { rel: "eth9/gro_flush_timeout".into(), value: "0".into() },
            ],
        };
        let t = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Stored>(&t).unwrap(), s);
        // A record written before irq-suspend-timeout was recorded still reads.
        let old = r#"{"napi":{"id":7,"defer_hard_irqs":1,"gro_flush_timeout_ns":2}}"#;
        assert_eq!(
            serde_json::from_str::<Restore>(old).unwrap(),
            Restore::Napi {
                id: 7,
                defer_hard_irqs: Some(1),
                gro_flush_timeout_ns: Some(2),
                irq_suspend_timeout_ns: None
            }
        );
    }
}
