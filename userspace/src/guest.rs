//! The QEMU guest of `scripts/vm/guest.sh` (emulated igb and virtio-net pairs), driven
//! from Rust for `xdpipe bench --target vm:*` and the guest tests. The guest is stopped
//! and its state directory removed when the [`Guest`] is dropped.
use std::{
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Output, Stdio},
};

/// A booted guest: the `guest.sh` that drives it and its state directory (guest.sh's
/// STATE_DIR, which holds the /host share).
pub struct Guest {
    script: PathBuf,
    state: PathBuf,
}

/// Runs `guest.sh ARGS`; `quiet` captures its output into the error, else it goes to ours.
fn script(script: &Path, args: &[&std::ffi::OsStr], quiet: bool) -> Result<(), String> {
    let what =
        format!("{} {}", script.display(), args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "));
    let mut cmd = Command::new(script);
    cmd.args(args);
    if quiet {
        let out = cmd.output().map_err(|e| format!("running {what}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{what} failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    } else {
        let st = cmd.status().map_err(|e| format!("running {what}: {e}"))?;
        if !st.success() {
            return Err(format!("{what} failed ({st}); its output is above"));
        }
    }
    Ok(())
}

impl Guest {
    /// Builds the guest image (cached) and boots it with `xdpipe` shared in, state under
    /// `state`. An error carries guest.sh's output, which ends with the guest's console.
    pub fn start(guest_sh: &Path, state: PathBuf, xdpipe: &Path, quiet: bool) -> Result<Guest, String> {
        script(guest_sh, &["build".as_ref()], quiet)?;
        let g = Guest { script: guest_sh.to_owned(), state };
        script(guest_sh, &["start".as_ref(), g.state.as_os_str(), "--xdpipe".as_ref(), xdpipe.as_os_str()], quiet)?;
        Ok(g)
    }

    fn exec_cmd(&self, job: &str, timeout_s: u64) -> Command {
        let mut cmd = Command::new(&self.script);
        cmd.arg("exec").arg(&self.state).args(["--timeout", &timeout_s.to_string(), "--", job]);
        cmd
    }

    /// Runs a shell job in the guest and collects its output.
    pub fn exec(&self, job: &str, timeout_s: u64) -> std::io::Result<Output> {
        self.exec_cmd(job, timeout_s).stdin(Stdio::null()).output()
    }

    /// Runs a shell job in the guest, its output going to ours as it comes.
    pub fn exec_shown(&self, job: &str, timeout_s: u64) -> std::io::Result<ExitStatus> {
        self.exec_cmd(job, timeout_s).status()
    }

    /// The host side of the guest's /host (9p share).
    pub fn share(&self) -> PathBuf {
        self.state.join("share")
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = Command::new(&self.script).arg("stop").arg(&self.state).status();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}
