//! Named network namespaces as iproute2 keeps them: `/run/netns/NAME`, a bind mount of a
//! namespace's `ns/net` file. Creating, deleting, listing, running a closure inside one
//! ([`with_netns`]), finding the processes in one ([`pids`]) and starting a program in one
//! ([`command`]: setns in `pre_exec`, no `ip netns exec`). Namespaces made here and by
//! `ip netns add` are interchangeable.
use std::{
    ffi::{CString, OsStr},
    fs::File,
    os::{
        fd::{AsRawFd as _, OwnedFd},
        unix::{fs::MetadataExt as _, process::CommandExt as _},
    },
    path::PathBuf,
    process::Command,
};

use super::NetError;

/// Where named namespaces live (iproute2's NETNS_RUN_DIR).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Checks a namespace name: it becomes a file name under [`NETNS_RUN_DIR`].
pub fn check_name(name: &str) -> Result<(), NetError> {
    let bad = |why| Err(NetError::BadName { kind: "namespace", name: name.to_owned(), why });
    if name.is_empty() || name.len() > 255 {
        return bad("use 1 to 255 bytes");
    }
    if name == "." || name == ".." || name.bytes().any(|b| b == b'/' || b == 0) {
        return bad("'/' and NUL are not allowed, nor '.' or '..'");
    }
    Ok(())
}

/// `/run/netns/NAME`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(NETNS_RUN_DIR).join(name)
}

/// True if the named namespace exists.
pub fn exists(name: &str) -> bool {
    check_name(name).is_ok() && path(name).exists()
}

/// Names of all named namespaces, sorted.
pub fn list() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(NETNS_RUN_DIR)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Opens the named namespace (for setns or IFLA_NET_NS_FD).
pub fn open(name: &str) -> Result<File, NetError> {
    check_name(name)?;
    File::open(path(name)).map_err(|e| NetError::io("opening network namespace", name, e))
}

fn cpath(p: &str) -> CString {
    CString::new(p).expect("paths here have no NUL")
}

/// Makes /run/netns (mode 0755) a shared mount point, as `ip netns add` does, so a
/// namespace mounted there shows in every mount namespace that sees /run/netns.
fn prepare_run_dir() -> Result<(), NetError> {
    use std::os::unix::fs::DirBuilderExt as _;
    match std::fs::DirBuilder::new().mode(0o755).create(NETNS_RUN_DIR) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(NetError::io("creating", NETNS_RUN_DIR, e)),
    }
    let dir = cpath(NETNS_RUN_DIR);
    let none = c"none";
    // SAFETY: mount(2) with valid C strings.
    let shared = || unsafe {
        libc::mount(none.as_ptr(), dir.as_ptr(), none.as_ptr(), libc::MS_SHARED | libc::MS_REC, std::ptr::null())
    };
    if shared() == 0 {
        return Ok(());
    }
    if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
        return Err(NetError::last("making a shared mount of", NETNS_RUN_DIR));
    }
    // Not a mount point yet: bind it onto itself, then share it.
    // SAFETY: as above.
    let rc = unsafe {
        libc::mount(dir.as_ptr(), dir.as_ptr(), none.as_ptr(), libc::MS_BIND | libc::MS_REC, std::ptr::null())
    };
    if rc != 0 || shared() != 0 {
        return Err(NetError::last("making a shared mount of", NETNS_RUN_DIR));
    }
    Ok(())
}

/// Creates the named namespace: a new network namespace (unshare in a short-lived thread,
/// so this process stays where it is) bind-mounted on `/run/netns/NAME`.
pub fn create(name: &str) -> Result<(), NetError> {
    check_name(name)?;
    prepare_run_dir()?;
    let p = path(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&p)
        .map_err(|e| NetError::io("creating network namespace", name, e))?;
    let target = cpath(&p.to_string_lossy());
    let made = std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: unshare affects only this thread, which ends right after.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(NetError::last("unshare(CLONE_NEWNET) for namespace", name));
            }
            let src = c"/proc/thread-self/ns/net";
            // SAFETY: mount(2) with valid C strings.
            let rc = unsafe {
                libc::mount(src.as_ptr(), target.as_ptr(), c"none".as_ptr(), libc::MS_BIND, std::ptr::null())
            };
            if rc != 0 {
                return Err(NetError::last("bind-mounting network namespace", name));
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| {
            Err(NetError::Decode { op: "creating", what: name.into(), detail: "thread panicked".into() })
        })
    });
    if made.is_err() {
        let _ = std::fs::remove_file(&p);
    }
    made
}

/// Deletes the named namespace (unmount and unlink, like `ip netns del`). The namespace
/// itself, and the interfaces in it, go once no process or mount holds it any more.
pub fn delete(name: &str) -> Result<(), NetError> {
    check_name(name)?;
    let p = path(name);
    let c = cpath(&p.to_string_lossy());
    // SAFETY: umount2(2) with a valid C string.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        let e = std::io::Error::last_os_error();
        // EINVAL: not a mount (a stale file); go on to remove it.
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(NetError::io("unmounting network namespace", name, e));
        }
    }
    std::fs::remove_file(&p).map_err(|e| NetError::io("deleting network namespace", name, e))
}

/// Runs `f` with the calling thread in the named namespace and moves it back after. Other
/// threads are not affected; sockets opened in `f` stay in the namespace.
pub fn with_netns<R>(name: &str, f: impl FnOnce() -> Result<R, NetError>) -> Result<R, NetError> {
    let target = open(name)?;
    let home = File::open("/proc/thread-self/ns/net").map_err(|e| NetError::io("opening", "this thread's netns", e))?;
    // SAFETY: valid namespace fds; setns changes only this thread.
    if unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(NetError::last("entering network namespace", name));
    }
    let r = f();
    // SAFETY: as above.
    if unsafe { libc::setns(home.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        // A thread left in the wrong namespace would act on the wrong interfaces.
        panic!("cannot return from network namespace {name}: {}", std::io::Error::last_os_error());
    }
    r.map_err(|e| e.in_ns(name))
}

/// (device, inode) of a namespace file.
fn ns_id(p: &std::path::Path) -> Option<(u64, u64)> {
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

/// Processes whose network namespace is the named one (what `ip netns pids` prints).
pub fn pids(name: &str) -> Result<Vec<i32>, NetError> {
    check_name(name)?;
    let f = open(name)?;
    let m = f.metadata().map_err(|e| NetError::io("reading", name, e))?;
    let want = (m.dev(), m.ino());
    let mut out: Vec<i32> = std::fs::read_dir("/proc")
        .map_err(|e| NetError::io("listing", "/proc", e))?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| ns_id(&PathBuf::from(format!("/proc/{pid}/ns/net"))) == Some(want))
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// A command for `program` that runs in the named namespace (None: this one), as
/// `ip netns exec` would start it: the child enters the namespace in `pre_exec` (the fd
/// is opened here, before the fork) and gets a private mount namespace with a sysfs of
/// its network namespace, so /sys/class/net shows its interfaces. If the namespace cannot
/// be opened, spawning fails with that error.
pub fn command(ns: Option<&str>, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    if let Some(ns) = ns {
        // Opened before the fork; a failure is kept as its errno, which the child returns
        // without allocating (spawn then fails with it).
        let fd: Result<OwnedFd, i32> = open(ns).map(OwnedFd::from).map_err(|e| e.errno().unwrap_or(libc::EINVAL));
        // SAFETY: the closure makes only system calls (setns, unshare, mount) on data
        // prepared before the fork: async-signal-safe, no allocation, no locks.
        unsafe {
            cmd.pre_exec(move || match &fd {
                Ok(fd) => enter_in_child(fd.as_raw_fd()),
                Err(errno) => Err(std::io::Error::from_raw_os_error(*errno)),
            })
        };
    }
    cmd
}

/// The child side of [`command`]: setns, a private mount namespace, a fresh sysfs.
fn enter_in_child(fd: i32) -> std::io::Result<()> {
    let err = std::io::Error::last_os_error;
    // SAFETY: plain system calls with static C strings.
    unsafe {
        if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
            return Err(err());
        }
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(err());
        }
        // Nothing mounted below may propagate back to the parent's namespace.
        if libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_SLAVE | libc::MS_REC,
            std::ptr::null(),
        ) != 0
        {
            return Err(err());
        }
        libc::umount2(c"/sys".as_ptr(), libc::MNT_DETACH);
        if libc::mount(c"none".as_ptr(), c"/sys".as_ptr(), c"sysfs".as_ptr(), 0, std::ptr::null()) != 0 {
            return Err(err());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_are_checked() {
        assert!(check_name("xdpipe-t1-rx").is_ok());
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(matches!(check_name(bad), Err(NetError::BadName { .. })), "{bad:?}");
        }
        assert!(check_name(&"x".repeat(256)).is_err());
        assert!(!exists("../etc"));
    }

    use crate::net::tests::root_or_skip;

    #[test]
    fn a_namespace_is_created_entered_and_deleted() {
        if !root_or_skip() {
            return;
        }
        let name = format!("xdpipe-nstest{}", std::process::id());
        create(&name).unwrap();
        assert!(exists(&name) && list().contains(&name));
        assert!(matches!(create(&name), Err(NetError::Io { .. })));
        let outside = ns_id(std::path::Path::new("/proc/thread-self/ns/net"));
        let inside = with_netns(&name, || Ok(ns_id(std::path::Path::new("/proc/thread-self/ns/net")))).unwrap();
        assert_ne!(inside, outside);
        assert_eq!(inside, ns_id(&path(&name)));
        assert_eq!(ns_id(std::path::Path::new("/proc/thread-self/ns/net")), outside);
        let out = command(Some(&name), "cat").arg("/proc/net/dev").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("lo:") && !text.contains("eth0"), "{text}");
        let ls = command(Some(&name), "ls").arg("/sys/class/net").output().unwrap();
        assert_eq!(String::from_utf8_lossy(&ls.stdout).trim(), "lo");
        assert!(pids(&name).unwrap().is_empty());
        delete(&name).unwrap();
        assert!(!exists(&name));
        assert!(command(Some(&name), "true").status().is_err());
    }
}
