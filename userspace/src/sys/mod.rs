//! Raw kernel calls behind one small surface: interface lookups, ethtool channel counts,
//! AF_XDP socket options and wakeups, capabilities. Worker and mode logic never call libc
//! themselves, so they can be tested without root.
#![allow(unsafe_code)]

use std::{ffi::CString, io, mem, os::fd::RawFd};

mod epoll;
mod xdp;
pub use epoll::{EPIOCSPARAMS, EpollParams};
pub use xdp::*;

/// A failed system call, with the call and the object it was about.
#[derive(Debug, thiserror::Error)]
#[error("{call} on {what}: {source}")]
pub struct SysError {
    /// The call, with its option where it has one (`setsockopt(XDP_UMEM_REG)`).
    pub call: &'static str,
    /// What it was made on: an interface, a socket fd, a mapping.
    pub what: String,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

impl SysError {
    fn last(call: &'static str, what: impl Into<String>) -> Self {
        Self { call, what: what.into(), source: io::Error::last_os_error() }
    }

    fn from_errno(call: &'static str, what: impl Into<String>, errno: i32) -> Self {
        Self { call, what: what.into(), source: io::Error::from_raw_os_error(errno) }
    }

    /// The OS error number, if the error carries one.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

/// The interface's index in the current network namespace, or `None` if it has none.
pub fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

const ETHTOOL_GCHANNELS: u32 = 0x3c;

#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

/// An `AF_INET` datagram socket closed on drop, for ioctls.
struct IoctlSocket(RawFd);

impl IoctlSocket {
    fn new() -> Result<Self, SysError> {
        // SAFETY: plain socket(2) call with constant arguments.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(SysError::last("socket(AF_INET)", "ioctl socket"));
        }
        Ok(Self(fd))
    }
}

impl Drop for IoctlSocket {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.0) };
    }
}

/// Number of RX queues the device has: ethtool's channel count (rx + combined), or the
/// `queues/rx-*` entries in sysfs for devices without the ethtool call.
pub fn rx_queue_count(iface: &str) -> Result<u32, SysError> {
    let err = match ethtool_channels(iface)? {
        Ok(ch) if ch.rx_count + ch.combined_count > 0 => return Ok(ch.rx_count + ch.combined_count),
        Ok(_) => SysError::from_errno("ioctl(SIOCETHTOOL, ETHTOOL_GCHANNELS)", iface, libc::EOPNOTSUPP),
        Err(e) => e,
    };
    let dir = format!("/sys/class/net/{iface}/queues");
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            let n =
                entries.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count();
            if n > 0 { Ok(n as u32) } else { Err(err) }
        }
        // No sysfs entry here (the device is in another namespace than the sysfs mount):
        // rtnetlink knows the count.
        Err(_) => crate::net::devices::num_rx_queues(iface).map_err(|_| err),
    }
}

/// The queue ids an AF_XDP socket may bind on `iface`: below its RX or its TX channel
/// count, whichever is larger (xsk_bind's own rule); the RX count where ethtool has no
/// channel counts.
pub fn xsk_queue_limit(iface: &str) -> Result<u32, SysError> {
    match ethtool_channels(iface)? {
        Ok(ch) if ch.rx_count + ch.tx_count + ch.combined_count > 0 => {
            Ok((ch.rx_count + ch.combined_count).max(ch.tx_count + ch.combined_count))
        }
        _ => rx_queue_count(iface),
    }
}

/// ethtool's channel counts of `iface` (inner error: the ioctl failed; outer: no socket).
fn ethtool_channels(iface: &str) -> Result<Result<EthtoolChannels, SysError>, SysError> {
    let sock = IoctlSocket::new()?;
    let mut ch = EthtoolChannels { cmd: ETHTOOL_GCHANNELS, ..Default::default() };
    let mut req = ifreq_named(iface);
    req.ifr_ifru.ifru_data = (&mut ch as *mut EthtoolChannels).cast();
    // SAFETY: `req` points at a live, correctly laid out ethtool_channels struct.
    let rc = unsafe { libc::ioctl(sock.0, libc::SIOCETHTOOL, &mut req) };
    Ok(if rc == 0 { Ok(ch) } else { Err(SysError::last("ioctl(SIOCETHTOOL, ETHTOOL_GCHANNELS)", iface)) })
}

/// A zeroed `ifreq` carrying the interface name (truncated to IFNAMSIZ - 1).
fn ifreq_named(iface: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(iface.bytes().take(libc::IFNAMSIZ - 1)) {
        *dst = src as libc::c_char;
    }
    req
}

/// The interface's MAC address (SIOCGIFHWADDR).
pub fn iface_mac(iface: &str) -> Result<[u8; 6], SysError> {
    let sock = IoctlSocket::new()?;
    let mut req = ifreq_named(iface);
    // SAFETY: `req` is a valid ifreq with the name set.
    if unsafe { libc::ioctl(sock.0, libc::SIOCGIFHWADDR, &mut req) } != 0 {
        return Err(SysError::last("ioctl(SIOCGIFHWADDR)", iface));
    }
    // SAFETY: SIOCGIFHWADDR filled the hwaddr member of the union.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(mac)
}

/// The system calls a worker makes in its loop: the seam in front of them. Every one goes
/// through [`hot_call`], which a unit test can replace for its thread
/// (`testing::override_hot_calls`, in test builds), so the worker loop runs under test without a socket
/// or root (aya's `sys::override_syscall` is the model).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HotCall {
    /// recvfrom(fd, NULL, 0, MSG_DONTWAIT): process the fill and RX rings.
    WakeupRx {
        /// The AF_XDP socket.
        fd: RawFd,
    },
    /// sendto(fd, NULL, 0, MSG_DONTWAIT): transmit what is on the TX ring.
    KickTx {
        /// The AF_XDP socket.
        fd: RawFd,
    },
    /// epoll_pwait(epfd, 1 event, timeout_ms): sleep until readable or woken.
    Wait {
        /// The epoll set ([`ReadableWaiter`]).
        epfd: RawFd,
        /// Longest sleep, ms (-1: no limit).
        timeout_ms: i32,
    },
}

/// What [`hot_call`] returns for a [`HotCall::Wait`] that ended on a timeout, an error
/// (EINTR) or an intercepted call, and for every other call.
pub const WOKE_BY_NOTHING: u64 = u64::MAX;

/// Makes one [`HotCall`]. Errors are "try again later" answers the loop ignores by design
/// (EAGAIN, ENOBUFS, EBUSY, ENETDOWN, EINTR), so none is returned. A [`HotCall::Wait`]
/// returns the data word of the event that ended it (the waiter's token for the fd), or
/// [`WOKE_BY_NOTHING`].
#[inline]
pub fn hot_call(call: HotCall) -> u64 {
    #[cfg(test)]
    if testing::intercept(call) {
        return WOKE_BY_NOTHING;
    }
    match call {
        HotCall::WakeupRx { fd } => {
            // SAFETY: recvfrom with a null buffer of length 0 touches no memory.
            unsafe {
                libc::recvfrom(
                    fd,
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
            WOKE_BY_NOTHING
        }
        HotCall::KickTx { fd } => {
            // SAFETY: sendto with a null buffer of length 0 touches no memory.
            unsafe { libc::sendto(fd, std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
            WOKE_BY_NOTHING
        }
        HotCall::Wait { epfd, timeout_ms } => {
            let mut ev = libc::epoll_event { events: 0, u64: WOKE_BY_NOTHING };
            // The raw system call: glibc's epoll_wait is a thread cancellation point and
            // wraps the call in two bookkeeping calls (about 2% of a sleeping worker's CPU).
            // SAFETY: a one-event buffer that lives across the call, and no signal mask.
            unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait,
                    epfd,
                    &mut ev,
                    1,
                    timeout_ms,
                    std::ptr::null::<libc::sigset_t>(),
                    8,
                )
            };
            ev.u64
        }
    }
}

/// Test support: replace the hot calls of the current thread.
#[cfg(test)]
pub mod testing {
    use std::cell::RefCell;

    use super::HotCall;

    type Hook = Box<dyn FnMut(HotCall)>;

    thread_local! {
        static HOOK: RefCell<Option<Hook>> = const { RefCell::new(None) };
    }

    /// Every [`HotCall`] this thread makes goes to `hook` instead of the kernel until the
    /// returned guard drops.
    pub fn override_hot_calls(hook: impl FnMut(HotCall) + 'static) -> Guard {
        HOOK.with(|h| *h.borrow_mut() = Some(Box::new(hook)));
        Guard(())
    }

    /// Ends an override.
    pub struct Guard(());

    impl Drop for Guard {
        fn drop(&mut self) {
            HOOK.with(|h| *h.borrow_mut() = None);
        }
    }

    pub(super) fn intercept(call: HotCall) -> bool {
        HOOK.with(|h| match h.borrow_mut().as_mut() {
            Some(f) => {
                f(call);
                true
            }
            None => false,
        })
    }
}

/// An eventfd that ends every worker's sleep once written: the run's stop. It stays
/// readable after [`StopEvent::set`] (level-triggered in each waiter's epoll set), so a
/// worker that goes to sleep after the stop returns at once: no wakeup can be lost, and no
/// thread is signalled.
pub struct StopEvent(std::os::fd::OwnedFd);

impl StopEvent {
    /// A new, unset stop event.
    pub fn new() -> Result<Self, SysError> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain eventfd call.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(SysError::last("eventfd", "worker stop"));
        }
        // SAFETY: we just created `fd` and own it from here on.
        Ok(Self(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }))
    }

    /// Wakes every waiter watching this event, now and for every later wait.
    pub fn set(&self) {
        use std::os::fd::AsRawFd;
        let one = 1u64;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd.
        unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    fn raw(&self) -> RawFd {
        use std::os::fd::AsRawFd;
        self.0.as_raw_fd()
    }
}

/// An epoll set holding one socket's readability (edge-triggered) and the run's
/// [`StopEvent`] (level-triggered). Unlike poll(), the wait entry on the socket stays
/// registered between waits (poll() adds and removes it on every call) and the socket's
/// poll method runs once per wakeup instead of twice.
pub struct ReadableWaiter {
    ep: std::os::fd::OwnedFd,
    recheck: Option<std::os::fd::OwnedFd>,
}

impl ReadableWaiter {
    /// The epoll data words that say which fd ended a wait.
    const SOCKET: u64 = 0;
    const STOP: u64 = 1;
    const TIMER: u64 = 2;

    /// Watches `fd` (an AF_XDP socket) and `stop`.
    pub fn new(fd: RawFd, stop: &StopEvent) -> Result<Self, SysError> {
        Self::build(fd, stop, None)
    }

    /// Watches `fd` and `stop` in a set that busy-polls `fd`'s NAPI (EPIOCSPARAMS, set
    /// before the socket is added, so that the set learns its NAPI id when the socket
    /// has one).
    pub fn busy_polling(fd: RawFd, stop: &StopEvent, params: EpollParams) -> Result<Self, SysError> {
        Self::build(fd, stop, Some(params))
    }

    fn build(fd: RawFd, stop: &StopEvent, params: Option<EpollParams>) -> Result<Self, SysError> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain epoll_create1 call.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(SysError::last("epoll_create1", "socket waiter"));
        }
        // SAFETY: we just created `ep` and own it from here on.
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(ep) };
        if let Some(p) = params {
            epoll::set_params(ep, &p)?;
        }
        for (watched, events, token) in
            [(fd, libc::EPOLLIN | libc::EPOLLET, Self::SOCKET), (stop.raw(), libc::EPOLLIN, Self::STOP)]
        {
            let mut ev = libc::epoll_event { events: events as u32, u64: token };
            // SAFETY: valid epoll fd, valid watched fd and event.
            if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, watched, &mut ev) } != 0 {
                return Err(SysError::last("epoll_ctl(EPOLL_CTL_ADD)", "socket waiter"));
            }
        }
        Ok(Self { ep: owned, recheck: None })
    }

    /// Adds a periodic timer to the set: every `ms` milliseconds a sleep ends, whatever its
    /// timeout, so a flag the kernel sets without making the socket readable (the fill
    /// ring's need_wakeup) is looked at again that soon. Armed once: a timeout on every
    /// wait arms and cancels a timer per sleep, which on the project's VM more than doubled
    /// a sleeping worker's CPU per frame (bisected to the commit that bounded the sleep:
    /// 1386 against 3176 ns at 200 kpps). Level-triggered, and read only after a wait it
    /// ended: a read after every wait was one more system call per wakeup.
    pub fn with_recheck(mut self, ms: u32) -> Result<Self, SysError> {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: plain timerfd_create call.
        let t = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC | libc::TFD_NONBLOCK) };
        if t < 0 {
            return Err(SysError::last("timerfd_create", "socket waiter"));
        }
        // SAFETY: we own `t`.
        let timer = unsafe { std::os::fd::OwnedFd::from_raw_fd(t) };
        let period = libc::timespec { tv_sec: 0, tv_nsec: ms as libc::c_long * 1_000_000 };
        let spec = libc::itimerspec { it_interval: period, it_value: period };
        // SAFETY: valid fd and spec.
        if unsafe { libc::timerfd_settime(t, 0, &spec, std::ptr::null_mut()) } != 0 {
            return Err(SysError::last("timerfd_settime", "socket waiter"));
        }
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: Self::TIMER };
        // SAFETY: valid fds.
        if unsafe { libc::epoll_ctl(self.ep.as_raw_fd(), libc::EPOLL_CTL_ADD, t, &mut ev) } != 0 {
            return Err(SysError::last("epoll_ctl(EPOLL_CTL_ADD)", "socket waiter's timer"));
        }
        self.recheck = Some(timer);
        Ok(self)
    }

    /// Whether a periodic timer ends every sleep.
    #[inline]
    pub fn rechecks(&self) -> bool {
        self.recheck.is_some()
    }

    /// Sleeps until the socket became readable since the last wait (edge) or the stop is
    /// set, for at most `timeout_ms` (-1: no limit). The caller must have found its RX
    /// ring empty first: a frame that arrived after that look raised the edge, so the
    /// wait returns at once.
    #[inline]
    pub fn wait(&self, timeout_ms: i32) {
        use std::os::fd::AsRawFd;
        let woke_by = hot_call(HotCall::Wait { epfd: self.ep.as_raw_fd(), timeout_ms });
        if woke_by == Self::TIMER
            && let Some(t) = &self.recheck
        {
            let mut n = 0u64;
            // SAFETY: reads 8 bytes into a live u64 (the expirations; non-blocking).
            unsafe { libc::read(t.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
        }
    }
}

#[cfg(test)]
mod waiter_tests {
    use std::{
        os::fd::{AsRawFd, FromRawFd, OwnedFd},
        time::{Duration, Instant},
    };

    use super::*;

    /// An eventfd standing in for the socket: readable once written.
    fn readable_fd() -> OwnedFd {
        // SAFETY: plain eventfd call.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        assert!(fd >= 0);
        // SAFETY: we just created `fd`.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    fn make_readable(fd: &OwnedFd) {
        let one = 1u64;
        // SAFETY: writes 8 bytes from a live u64.
        assert_eq!(unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) }, 8);
    }

    /// How long `wait(timeout_ms)` took.
    fn timed_wait(w: &ReadableWaiter, timeout_ms: i32) -> Duration {
        let t = Instant::now();
        w.wait(timeout_ms);
        t.elapsed()
    }

    #[test]
    fn a_recheck_timer_ends_every_unbounded_sleep() {
        let (sock, stop) = (readable_fd(), StopEvent::new().unwrap());
        let w = ReadableWaiter::new(sock.as_raw_fd(), &stop).unwrap().with_recheck(2).unwrap();
        assert!(w.rechecks());
        for _ in 0..3 {
            assert!(timed_wait(&w, -1) < Duration::from_secs(1), "the timer did not end the sleep");
        }
    }

    #[test]
    fn the_recheck_timer_is_read_when_it_ends_a_sleep() {
        // Unread, the level-triggered timer would end every later sleep at once.
        let (sock, stop) = (readable_fd(), StopEvent::new().unwrap());
        let w = ReadableWaiter::new(sock.as_raw_fd(), &stop).unwrap().with_recheck(20).unwrap();
        let slept: Duration = (0..3).map(|_| timed_wait(&w, -1)).sum();
        assert!(slept >= Duration::from_millis(40), "three sleeps took {slept:?}: the timer was not read");
    }

    #[test]
    fn a_stop_set_before_the_sleep_ends_every_later_sleep_at_once() {
        let (sock, stop) = (readable_fd(), StopEvent::new().unwrap());
        let w = ReadableWaiter::new(sock.as_raw_fd(), &stop).unwrap();
        stop.set();
        for _ in 0..3 {
            assert!(timed_wait(&w, 5_000) < Duration::from_secs(1), "the stop was lost");
        }
    }

    #[test]
    fn readiness_between_the_look_and_the_sleep_ends_it_at_once() {
        let (sock, stop) = (readable_fd(), StopEvent::new().unwrap());
        let w = ReadableWaiter::new(sock.as_raw_fd(), &stop).unwrap();
        // Nothing pending: the sleep lasts its timeout.
        assert!(timed_wait(&w, 50) >= Duration::from_millis(45));
        // A frame arrives after the worker found the ring empty, before it sleeps.
        make_readable(&sock);
        assert!(timed_wait(&w, 5_000) < Duration::from_secs(1), "the readiness was lost");
        // A second arrival (the ring was drained in between) raises a new edge.
        make_readable(&sock);
        assert!(timed_wait(&w, 5_000) < Duration::from_secs(1), "the second arrival was lost");
    }
}

/// Sends `sig` to process `pid`; errors (already gone) are ignored.
pub fn send_signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) };
}

/// Linux capability numbers xdpipe refers to.
pub const CAP_BPF: u32 = 39;

/// Keeps only the capabilities in `keep` (effective and permitted) for the calling thread
/// and the threads it creates afterwards; the rest are gone for good.
pub fn drop_capabilities_except(keep: &[u32]) -> Result<(), SysError> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut data = [Data::default(); 2];
    for &c in keep {
        let (i, bit) = ((c / 32) as usize, 1u32 << (c % 32));
        data[i].effective |= bit;
        data[i].permitted |= bit;
    }
    let hdr = Header { version: VERSION_3, pid: 0 };
    // SAFETY: capset with a v3 header and two data words, both valid for the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &hdr as *const Header, data.as_ptr()) };
    if rc != 0 {
        return Err(SysError::last("capset", "this thread"));
    }
    Ok(())
}

/// More capability numbers: what [`confine_worker_thread`] needs to change a thread's
/// ids and bounding set.
pub const CAP_SETGID: u32 = 6;
/// CAP_SETUID.
pub const CAP_SETUID: u32 = 7;
/// CAP_SETPCAP.
pub const CAP_SETPCAP: u32 = 8;

/// The uid and gid a worker thread runs as after [`confine_worker_thread`]: `nobody` /
/// `nogroup`, by number (no passwd lookup in a worker).
pub const WORKER_ID: u32 = 65534;

/// Confines the calling thread, and only it, for good: no_new_privs, an empty capability
/// bounding set, no supplementary groups, uid and gid [`WORKER_ID`] (real, effective,
/// saved), and of its capabilities only `keep` (effective and permitted; none inheritable
/// or ambient). The calling thread needs CAP_SETPCAP, CAP_SETUID and CAP_SETGID (and each
/// of `keep`) when it starts.
///
/// Every step is the raw system call: glibc's setresuid/setgroups change every thread of
/// the process (its setxid broadcast), and the thread that made a pipeline must stay as it
/// is (in `xdpipe veth`, the main thread removes the testbed's namespaces at the end).
pub fn confine_worker_thread(keep: &[u32]) -> Result<(), SysError> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(SysError::last("prctl(PR_SET_NO_NEW_PRIVS)", "worker thread"));
    }
    // Up to the kernel's last capability: PR_CAPBSET_DROP says EINVAL past it.
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            let e = io::Error::last_os_error().raw_os_error().unwrap_or(0);
            if e == libc::EINVAL && cap > 0 {
                break;
            }
            return Err(SysError::from_errno("prctl(PR_CAPBSET_DROP)", format!("capability {cap}"), e));
        }
    }
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) } != 0 {
        return Err(SysError::last("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", "worker thread"));
    }
    if !keep.is_empty() {
        // Keep the permitted set across the uid change below (effective is cleared and
        // raised again by the capset at the end).
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
            return Err(SysError::last("prctl(PR_SET_KEEPCAPS)", "worker thread"));
        }
    }
    let id = WORKER_ID as libc::c_long;
    // SAFETY: setgroups with a count of 0 reads no memory.
    if unsafe { libc::syscall(libc::SYS_setgroups, 0 as libc::c_long, std::ptr::null::<libc::gid_t>()) } != 0 {
        return Err(SysError::last("setgroups", "worker thread"));
    }
    // SAFETY: integer arguments only; the raw call changes this thread alone.
    if unsafe { libc::syscall(libc::SYS_setresgid, id, id, id) } != 0 {
        return Err(SysError::last("setresgid", format!("worker thread to gid {WORKER_ID}")));
    }
    // SAFETY: integer arguments only; the raw call changes this thread alone.
    if unsafe { libc::syscall(libc::SYS_setresuid, id, id, id) } != 0 {
        return Err(SysError::last("setresuid", format!("worker thread to uid {WORKER_ID}")));
    }
    drop_capabilities_except(keep)
}

/// IFF_UP and IFF_RUNNING of an interface, or None if it no longer exists.
pub fn iface_up_running(iface: &str) -> Option<(bool, bool)> {
    LinkWatch::new(iface).ok()?.state()
}

/// Reads one interface's up / running flags again and again through one socket: a
/// socket per read would leave each one to an RCU-deferred free, which wakes the RCU
/// thread on the cores the pipeline runs on.
pub struct LinkWatch {
    sock: IoctlSocket,
    iface: String,
}

impl LinkWatch {
    /// Opens the socket every read of `iface` goes through (whether the interface exists is
    /// only seen on a read).
    pub fn new(iface: &str) -> Result<Self, SysError> {
        Ok(Self { sock: IoctlSocket::new()?, iface: iface.to_owned() })
    }

    /// (up, running), or None when the interface is gone.
    pub fn state(&self) -> Option<(bool, bool)> {
        let mut req = ifreq_named(&self.iface);
        // SAFETY: `req` is a valid ifreq with the name set.
        if unsafe { libc::ioctl(self.sock.0, libc::SIOCGIFFLAGS, &mut req) } != 0 {
            return None;
        }
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        let flags = unsafe { req.ifr_ifru.ifru_flags } as i32;
        Some((flags & libc::IFF_UP != 0, flags & libc::IFF_RUNNING != 0))
    }
}

/// Waits until `iface` is up with carrier, for at most `timeout`; false if it is not by then.
pub fn wait_for_carrier(iface: &str, timeout: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if iface_up_running(iface) == Some((true, true)) {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Pins task `pid` (a thread of any process, kernel threads included) to one core.
pub fn pin_task(pid: i32, core: u32) -> Result<(), SysError> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    if core as usize >= 8 * mem::size_of::<libc::cpu_set_t>() {
        return Err(SysError {
            call: "sched_setaffinity",
            what: format!("pid {pid}"),
            source: io::Error::from_raw_os_error(libc::EINVAL),
        });
    }
    // SAFETY: `core` is within the set's bits (checked above).
    unsafe { libc::CPU_SET(core as usize, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    if unsafe { libc::sched_setaffinity(pid, mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(SysError::last("sched_setaffinity", format!("pid {pid}, core {core}")));
    }
    Ok(())
}

/// A new directory under the temporary directory that only this user can use (mkdtemp,
/// mode 0700), named `PREFIX-XXXXXX` with a random suffix: never a predictable path.
pub fn private_temp_dir(prefix: &str) -> io::Result<std::path::PathBuf> {
    use std::os::unix::ffi::OsStringExt as _;
    if prefix.contains('/') || prefix.contains('\0') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("temporary directory prefix {prefix:?}")));
    }
    let mut tmpl = std::env::temp_dir().join(format!("{prefix}-XXXXXX")).into_os_string().into_vec();
    tmpl.push(0);
    // SAFETY: a NUL-terminated, writable template that mkdtemp rewrites in place.
    if unsafe { libc::mkdtemp(tmpl.as_mut_ptr().cast()) }.is_null() {
        return Err(io::Error::last_os_error());
    }
    tmpl.pop();
    Ok(std::ffi::OsString::from_vec(tmpl).into())
}

/// Waits until every XDP program run that started before the call has ended, with the
/// redirects it made flushed to their sockets: an RCU grace period (membarrier
/// MEMBARRIER_CMD_GLOBAL is synchronize_rcu(), and a driver's NAPI poll, where the
/// program runs and `xdp_do_flush` publishes the redirected frames on the sockets' RX
/// rings, is one RCU read-side section). After an XSKMAP entry is removed, this is the
/// point from which no further frame reaches that socket. Where membarrier refuses
/// (nohz_full kernels refuse MEMBARRIER_CMD_GLOBAL), it sleeps 20 ms instead, far longer
/// than a NAPI poll lasts.
pub fn wait_for_in_flight_xdp() {
    // SAFETY: membarrier takes two ints and a cpu id and touches no memory of ours.
    let rc = unsafe { libc::syscall(libc::SYS_membarrier, libc::MEMBARRIER_CMD_GLOBAL, 0, 0) };
    if rc != 0 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Effective user id 0?
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Monotonic clock in nanoseconds (CLOCK_MONOTONIC): the clock packet stamps use, shared
/// by every process on the host, so one-way latency can be measured on one machine.
#[inline]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec; CLOCK_MONOTONIC always exists (vDSO, no syscall).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sleeps `ns` nanoseconds on CLOCK_MONOTONIC (clock_nanosleep; a signal cuts it short,
/// which the callers' loops tolerate). No allocation.
#[inline]
pub fn sleep_ns(ns: u64) {
    let ts =
        libc::timespec { tv_sec: (ns / 1_000_000_000) as libc::time_t, tv_nsec: (ns % 1_000_000_000) as libc::c_long };
    // SAFETY: `ts` is a valid timespec; no remainder is asked for.
    unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, 0, &ts, std::ptr::null_mut()) };
}

/// Sets this thread's timer slack (how late the kernel may end its sleeps, 50 us by
/// default) to `ns`: for sleeps of tens of microseconds that must end on time.
pub fn set_timer_slack_ns(ns: u64) -> Result<(), SysError> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(SysError::last("prctl(PR_SET_TIMERSLACK)", "worker thread"));
    }
    Ok(())
}

/// CLOCK_TAI in nanoseconds: the clock of the kernel's software TX completion
/// timestamps (AF_XDP copy mode, `xsk_destruct_skb`).
pub fn tai_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec; CLOCK_TAI always exists (vDSO, no syscall).
    unsafe { libc::clock_gettime(libc::CLOCK_TAI, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Thread CPU time in nanoseconds (CLOCK_THREAD_CPUTIME_ID): what a worker cost.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: as above.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Makes a child started from `cmd` receive SIGTERM when this process dies (even by
/// SIGKILL), so `xdpipe veth` never leaves a generator or receiver running.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the closure only calls prctl, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })
    };
}

/// A command for `program` in network namespace `ns` (None: this one) that dies with
/// this process (see [`die_with_parent`]). The child enters the namespace in `pre_exec`
/// ([`crate::net::ns::command`]); no `ip netns exec` is involved.
pub fn command_in(ns: Option<&str>, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let mut cmd = crate::net::ns::command(ns, program);
    die_with_parent(&mut cmd);
    cmd
}

/// Moves the calling thread into the named network namespace (`/run/netns/NAME`, as
/// `ip netns add` creates). Other threads keep theirs; threads it spawns inherit it.
pub fn enter_netns(name: &str) -> Result<(), SysError> {
    use std::os::fd::AsRawFd as _;
    let path = format!("/run/netns/{name}");
    let file = std::fs::File::open(&path).map_err(|source| SysError { call: "open", what: path.clone(), source })?;
    // SAFETY: a valid namespace fd; setns affects only this thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(SysError::last("setns(CLONE_NEWNET)", path));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_an_index_and_nonsense_has_none() {
        assert!(ifindex("lo").is_some());
        assert!(ifindex("no-such-if0").is_none());
        assert!(ifindex("bad\0name").is_none());
    }

    #[test]
    fn loopback_has_rx_queues() {
        assert!(rx_queue_count("lo").unwrap() >= 1);
        assert!(rx_queue_count("no-such-if0").is_err());
    }

    #[test]
    fn clocks_move_forward() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a);
        assert!(thread_cpu_ns() > 0);
    }
}
