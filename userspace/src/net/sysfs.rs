//! Reads and writes /sys/class/net of another network namespace. sysfs shows the interfaces of
//! the namespace that mounted it, so the write runs in a short-lived thread that enters
//! the namespace, unshares its mount namespace (made a slave of ours, so nothing leaks
//! back) and mounts a sysfs of its own there, as `ip netns exec` does for a program.
use std::os::fd::AsRawFd as _;

use super::{NetError, ns};

/// Writes `value` to `/sys/class/net/<rel>` as seen from namespace `netns` (None: ours).
pub fn write_net(netns: Option<&str>, rel: &str, value: &str) -> Result<(), NetError> {
    let path = format!("/sys/class/net/{rel}");
    let Some(name) = netns else {
        return std::fs::write(&path, value).map_err(|e| NetError::io("writing", path, e));
    };
    in_ns_sysfs(&ns::open(name)?, name, rel, "writing", |path| std::fs::write(path, value))
}

/// The calling thread's network namespace, for [`read_net_in`] and [`write_net_in`]: a
/// thread that entered a namespace by setns still sees the sysfs of its mount namespace,
/// which shows another namespace's devices.
pub fn current_netns() -> Result<std::fs::File, NetError> {
    std::fs::File::open("/proc/thread-self/ns/net").map_err(|e| NetError::io("opening", "/proc/thread-self/ns/net", e))
}

/// Reads `/sys/class/net/<rel>` (trimmed) in a sysfs of namespace `ns` (from
/// [`current_netns`] or [`ns::open`]); `label` names it in messages.
pub fn read_net_in(ns: &std::fs::File, label: &str, rel: &str) -> Result<String, NetError> {
    in_ns_sysfs(ns, label, rel, "reading", |path| std::fs::read_to_string(path).map(|s| s.trim().to_owned()))
}

/// Writes `value` to `/sys/class/net/<rel>` in a sysfs of namespace `ns`.
pub fn write_net_in(ns: &std::fs::File, label: &str, rel: &str, value: &str) -> Result<(), NetError> {
    in_ns_sysfs(ns, label, rel, "writing", |path| std::fs::write(path, value))
}

/// Runs `f` on the path of `/sys/class/net/<rel>` in a sysfs of namespace `fd`, on a
/// short-lived thread.
fn in_ns_sysfs<R: Send>(
    fd: &std::fs::File,
    name: &str,
    rel: &str,
    op: &'static str,
    f: impl FnOnce(&str) -> std::io::Result<R> + Send,
) -> Result<R, NetError> {
    let path = format!("/sys/class/net/{rel}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let fail = |op| Err(NetError::last(op, format!("{path} (netns {name})")));
            // SAFETY: system calls with valid arguments; all affect only this thread,
            // which ends when the closure returns.
            unsafe {
                if libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return fail("entering the network namespace for");
                }
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return fail("unshare(CLONE_NEWNS) for");
                }
                let none = c"none".as_ptr();
                if libc::mount(none, c"/".as_ptr(), std::ptr::null(), libc::MS_SLAVE | libc::MS_REC, std::ptr::null())
                    != 0
                {
                    return fail("making / a slave mount for");
                }
                // Detach the sysfs there first, as `ip netns exec` does: if it is already
                // this namespace's (a process started in it), mounting the same
                // superblock on the same place again fails with EBUSY. This mount
                // namespace is the thread's own, so nothing else sees the change.
                libc::umount2(c"/sys".as_ptr(), libc::MNT_DETACH);
                if libc::mount(none, c"/sys".as_ptr(), c"sysfs".as_ptr(), 0, std::ptr::null()) != 0 {
                    return fail("mounting a namespace's sysfs for");
                }
            }
            f(&path).map_err(|e| NetError::io(op, format!("{path} (netns {name})"), e))
        })
        .join()
        .unwrap_or_else(|_| Err(NetError::Decode { op, what: path.clone(), detail: "thread panicked".into() }))
    })
}
