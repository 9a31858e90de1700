//! Writes to /sys/class/net of another network namespace. sysfs shows the interfaces of
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
    let fd = ns::open(name)?;
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
                if libc::mount(none, c"/sys".as_ptr(), c"sysfs".as_ptr(), 0, std::ptr::null()) != 0 {
                    return fail("mounting a namespace's sysfs for");
                }
            }
            std::fs::write(&path, value).map_err(|e| NetError::io("writing", format!("{path} (netns {name})"), e))
        })
        .join()
        .unwrap_or_else(|_| {
            Err(NetError::Decode { op: "writing", what: path.clone(), detail: "thread panicked".into() })
        })
    })
}
