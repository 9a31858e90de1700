//! Epoll's own busy polling (Linux 6.9+): the EPIOCSPARAMS ioctl gives an epoll set
//! busy_poll_usecs, busy_poll_budget and prefer_busy_poll, so that epoll_wait on an empty
//! set runs the NAPI of the sockets in it before it sleeps. With a NAPI's
//! irq-suspend-timeout set (netdev napi-set, Linux 6.13+), an epoll_wait that finds events
//! also keeps the device's IRQ suspended for that long, and one that finds none lets it
//! resume (Documentation/networking/napi.rst, "IRQ suspension"). Every socket in one set
//! must be served by the same NAPI: xdpipe puts one AF_XDP socket in each.
use std::os::fd::AsRawFd as _;

use super::{ReadableWaiter, SysError};

/// `struct epoll_params` (include/uapi/linux/eventpoll.h): 8 bytes, the pad zero (the
/// kernel refuses the ioctl otherwise).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EpollParams {
    /// How long one epoll_wait polls the NAPI before it sleeps, us (at most i32::MAX).
    pub busy_poll_usecs: u32,
    /// Frames one poll may process (above 64 needs CAP_NET_ADMIN; 0: the kernel's 8).
    pub busy_poll_budget: u16,
    /// 1: prefer busy polling (the device's IRQ stays deferred while the set polls); the
    /// condition for IRQ suspension.
    pub prefer_busy_poll: u8,
    pad: u8,
}

impl EpollParams {
    /// Preferred busy polling for `usecs` with `budget` frames a poll.
    pub const fn preferred(usecs: u32, budget: u16) -> Self {
        Self { busy_poll_usecs: usecs, busy_poll_budget: budget, prefer_busy_poll: 1, pad: 0 }
    }
}

/// `_IOC(dir, type, nr, size)` in the asm-generic layout (x86, arm64, riscv; not the
/// powerpc, mips or sparc one).
const fn ioc(dir: u64, typ: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (typ << 8) | nr
}
const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;
/// EPOLL_IOC_TYPE.
const EPOLL_IOC: u64 = 0x8A;
/// `_IOW(EPOLL_IOC_TYPE, 0x01, struct epoll_params)`: sets the set's busy-poll parameters.
pub const EPIOCSPARAMS: u64 = ioc(IOC_WRITE, EPOLL_IOC, 0x01, std::mem::size_of::<EpollParams>());
/// `_IOR(EPOLL_IOC_TYPE, 0x02, struct epoll_params)`: reads them back.
pub const EPIOCGPARAMS: u64 = ioc(IOC_READ, EPOLL_IOC, 0x02, std::mem::size_of::<EpollParams>());

/// EPIOCSPARAMS on the epoll fd `epfd`.
pub(super) fn set_params(epfd: std::os::fd::RawFd, p: &EpollParams) -> Result<(), SysError> {
    // SAFETY: the ioctl reads 8 bytes from a live, fully initialised epoll_params.
    if unsafe { libc::ioctl(epfd, EPIOCSPARAMS as _, p as *const EpollParams) } != 0 {
        return Err(SysError::last("ioctl(EPIOCSPARAMS)", "the busy-poll epoll set"));
    }
    Ok(())
}

impl ReadableWaiter {
    /// The set's busy-poll parameters, as the kernel reports them (EPIOCGPARAMS).
    pub fn busy_poll_params(&self) -> Result<EpollParams, SysError> {
        let mut p = EpollParams::default();
        // SAFETY: the ioctl writes 8 bytes into a live epoll_params.
        if unsafe { libc::ioctl(self.ep.as_raw_fd(), EPIOCGPARAMS as _, &mut p as *mut EpollParams) } != 0 {
            return Err(SysError::last("ioctl(EPIOCGPARAMS)", "the busy-poll epoll set"));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;
    use crate::sys::StopEvent;

    #[test]
    fn epoll_params_has_the_uapi_layout_and_ioctl_numbers() {
        assert_eq!(size_of::<EpollParams>(), 8);
        assert_eq!(offset_of!(EpollParams, busy_poll_usecs), 0);
        assert_eq!(offset_of!(EpollParams, busy_poll_budget), 4);
        assert_eq!(offset_of!(EpollParams, prefer_busy_poll), 6);
        assert_eq!(offset_of!(EpollParams, pad), 7);
        assert_eq!(EPIOCSPARAMS, 0x4008_8a01);
        assert_eq!(EPIOCGPARAMS, 0x8008_8a02);
    }

    #[test]
    fn a_busy_polling_waiter_has_its_parameters_in_the_kernel() {
        // An eventfd stands in for the socket: the parameters belong to the set.
        // SAFETY: plain eventfd call; the fd is closed below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        assert!(fd >= 0);
        let stop = StopEvent::new().unwrap();
        let want = EpollParams::preferred(25, 64);
        match ReadableWaiter::busy_polling(fd, &stop, want) {
            Ok(w) => assert_eq!(w.busy_poll_params().unwrap(), want),
            // A kernel before 6.9, or one built without CONFIG_NET_RX_BUSY_POLL.
            Err(e) => assert!(matches!(e.errno(), Some(libc::ENOTTY | libc::EOPNOTSUPP)), "{e}"),
        }
        // SAFETY: `fd` is ours and no longer used.
        unsafe { libc::close(fd) };
    }
}
