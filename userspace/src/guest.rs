//! The QEMU guest of `scripts/vm/guest.sh` (emulated igb and virtio-net pairs), driven
//! from Rust for `xdpipe bench --target vm:*` and the guest tests. The guest is stopped
//! and its state directory removed when the [`Guest`] is dropped, and on a second
//! signal through [`crate::teardown`].
//!
//! guest.sh runs in a process group of its own, so a Ctrl-C at the terminal reaches only
//! xdpipe, which then stops it: SIGTERM (guest.sh's traps stop QEMU and remove the
//! namespace while booting, or cancel the job in the guest), [`CHILD_GRACE`], SIGKILL.
//! It gets SIGTERM too if xdpipe dies (PR_SET_PDEATHSIG).
use std::{
    io::Read as _,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// How long a guest.sh child has to end after SIGTERM before it gets SIGKILL.
pub const CHILD_GRACE: Duration = Duration::from_secs(5);
/// How long `guest.sh stop` may take (a poweroff of up to 10 s, then QEMU killed).
const STOP_DEADLINE: Duration = Duration::from_secs(20);

/// A booted guest: the `guest.sh` that drives it and its state directory (guest.sh's
/// STATE_DIR, which holds the /host share).
pub struct Guest {
    script: PathBuf,
    state: PathBuf,
    stop: Option<Arc<AtomicBool>>,
    /// Runs `guest.sh stop` and removes the state directory.
    undo: Option<crate::teardown::Undo>,
}

/// A guest.sh command: its own process group, SIGTERM when we die.
fn command(script: &Path) -> Command {
    let mut cmd = Command::new(script);
    cmd.process_group(0);
    crate::sys::die_with_parent(&mut cmd);
    cmd
}

/// Waits for `child`; once `stop` is set (or `deadline` passes) sends it SIGTERM, and
/// SIGKILL after [`CHILD_GRACE`]. Returns its status and whether it was stopped.
pub fn wait_child(
    child: &mut Child,
    stop: Option<&AtomicBool>,
    deadline: Option<Duration>,
) -> std::io::Result<(ExitStatus, bool)> {
    let t0 = Instant::now();
    let mut termed: Option<Instant> = None;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok((st, termed.is_some()));
        }
        let want_stop = stop.is_some_and(|s| s.load(Ordering::Relaxed)) || deadline.is_some_and(|d| t0.elapsed() >= d);
        match termed {
            None if want_stop => {
                crate::sys::send_signal(child.id() as i32, libc::SIGTERM);
                termed = Some(Instant::now());
            }
            Some(t) if t.elapsed() >= CHILD_GRACE => {
                let _ = child.kill();
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `guest.sh ARGS`; `quiet` captures its output into the error, else it goes to ours.
fn script(script: &Path, args: &[&std::ffi::OsStr], quiet: bool, stop: Option<&AtomicBool>) -> Result<(), String> {
    let what =
        format!("{} {}", script.display(), args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "));
    let mut cmd = command(script);
    cmd.args(args).stdin(Stdio::null());
    if quiet {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child = cmd.spawn().map_err(|e| format!("running {what}: {e}"))?;
    let readers = [
        child.stdout.take().map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
        child.stderr.take().map(|e| Box::new(e) as Box<dyn std::io::Read + Send>),
    ]
    .map(|r| {
        r.map(|mut r| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = r.read_to_end(&mut v);
                String::from_utf8_lossy(&v).into_owned()
            })
        })
    });
    let waited = wait_child(&mut child, stop, None);
    let [out, err] = readers.map(|r| r.and_then(|t| t.join().ok()).unwrap_or_default());
    let (st, stopped) = waited.map_err(|e| format!("waiting for {what}: {e}"))?;
    if stopped {
        return Err(format!("{what}: interrupted"));
    }
    if !st.success() {
        return Err(if quiet {
            format!("{what} failed ({st}):\n{out}\n{err}")
        } else {
            format!("{what} failed ({st}); its output is above")
        });
    }
    Ok(())
}

/// `guest.sh stop STATE` within [`STOP_DEADLINE`], then the state directory removed.
fn stop_guest(script: &Path, state: &Path) {
    match command(script).arg("stop").arg(state).stdin(Stdio::null()).spawn() {
        Ok(mut c) => {
            if let Err(e) = wait_child(&mut c, None, Some(STOP_DEADLINE)) {
                log::warn!("waiting for {} stop: {e}", script.display());
            }
        }
        Err(e) => log::warn!("running {} stop: {e}", script.display()),
    }
    let _ = std::fs::remove_dir_all(state);
}

impl Guest {
    /// Builds the guest image (cached) and boots it with `xdpipe` shared in, state under
    /// `state`. An error carries guest.sh's output, which ends with the guest's console.
    pub fn start(guest_sh: &Path, state: PathBuf, xdpipe: &Path, quiet: bool) -> Result<Guest, String> {
        Self::start_until(guest_sh, state, xdpipe, quiet, None)
    }

    /// [`Guest::start`] that gives up when `stop` is set (a signal): guest.sh is stopped
    /// and so is the guest; [`Guest::exec_shown`] is stopped by it too.
    pub fn start_until(
        guest_sh: &Path,
        state: PathBuf,
        xdpipe: &Path,
        quiet: bool,
        stop: Option<Arc<AtomicBool>>,
    ) -> Result<Guest, String> {
        let s = stop.as_deref();
        script(guest_sh, &["build".as_ref()], quiet, s)?;
        // Registered before the boot: a start that fails or is stopped half-way still
        // ends with `guest.sh stop`.
        let (sh, st) = (guest_sh.to_owned(), state.clone());
        let undo = crate::teardown::register(format!("QEMU guest {}", state.display()), move || stop_guest(&sh, &st));
        let g = Guest { script: guest_sh.to_owned(), state, stop: stop.clone(), undo: Some(undo) };
        script(guest_sh, &["start".as_ref(), g.state.as_os_str(), "--xdpipe".as_ref(), xdpipe.as_os_str()], quiet, s)?;
        Ok(g)
    }

    fn exec_cmd(&self, job: &str, timeout_s: u64) -> Command {
        let mut cmd = command(&self.script);
        cmd.arg("exec").arg(&self.state).args(["--timeout", &timeout_s.to_string(), "--", job]);
        cmd
    }

    /// Runs a shell job in the guest and collects its output.
    pub fn exec(&self, job: &str, timeout_s: u64) -> std::io::Result<Output> {
        self.exec_cmd(job, timeout_s).stdin(Stdio::null()).output()
    }

    /// Runs a shell job in the guest, its output going to ours as it comes. A stop flag
    /// given to [`Guest::start_until`] ends it (the job in the guest gets SIGTERM).
    pub fn exec_shown(&self, job: &str, timeout_s: u64) -> std::io::Result<ExitStatus> {
        let mut child = self.exec_cmd(job, timeout_s).stdin(Stdio::null()).spawn()?;
        wait_child(&mut child, self.stop.as_deref(), None).map(|(st, _)| st)
    }

    /// The host side of the guest's /host (9p share).
    pub fn share(&self) -> PathBuf {
        self.state.join("share")
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Some(u) = self.undo.take() {
            u.run();
        }
    }
}
