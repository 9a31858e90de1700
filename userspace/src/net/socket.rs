//! A synchronous netlink socket (`netlink-sys`) speaking request/ack and dumps with
//! sequence numbers: [`Netlink::request`] sends one message and returns the replies once
//! the kernel acked it (or finished the multipart dump), or the kernel's errno with its
//! extended-ack text. The socket belongs to the network namespace of the thread that
//! opened it.
use std::fmt::Debug;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer, NetlinkDeserializable,
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable, NlaBuffer, NlasIterator,
};
use netlink_sys::{Socket, SocketAddr};

use super::NetError;

pub use netlink_sys::protocols::{NETLINK_GENERIC, NETLINK_ROUTE};

/// `NLMSGERR_ATTR_MSG`: the extended ack's text.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// A netlink socket of one protocol and its next sequence number.
pub struct Netlink {
    sock: Socket,
    seq: u32,
}

impl Netlink {
    /// Opens a socket of `protocol` ([`NETLINK_ROUTE`] or [`NETLINK_GENERIC`]) in the
    /// calling thread's network namespace.
    pub fn open(protocol: isize) -> Result<Self, NetError> {
        let what = if protocol == NETLINK_ROUTE { "(NETLINK_ROUTE)" } else { "(NETLINK_GENERIC)" };
        let mut sock = Socket::new(protocol).map_err(|e| NetError::io("opening a netlink socket", what, e))?;
        sock.bind_auto().map_err(|e| NetError::io("binding a netlink socket", what, e))?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(|e| NetError::io("connecting a netlink socket", what, e))?;
        // Best effort: without them errors carry no text, which is all they change.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        Ok(Netlink { sock, seq: 0 })
    }

    /// Sends `msg` with `flags` (NLM_F_REQUEST and, for non-dumps, NLM_F_ACK are added)
    /// and collects the replies. `op` and `what` name the request in errors.
    pub fn request<I>(&mut self, msg: I, flags: u16, op: &'static str, what: &str) -> Result<Vec<I>, NetError>
    where
        I: NetlinkSerializable + NetlinkDeserializable + Debug,
    {
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = flags | NLM_F_REQUEST | if dump { 0 } else { NLM_F_ACK };
        header.sequence_number = seq;
        let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        m.finalize();
        let mut buf = vec![0u8; m.buffer_len()];
        m.serialize(&mut buf);
        self.sock.send(&buf, 0).map_err(|e| NetError::io(op, format!("{what}: sending"), e))?;
        let mut replies = Vec::new();
        loop {
            let (data, _) =
                self.sock.recv_from_full().map_err(|e| NetError::io(op, format!("{what}: receiving"), e))?;
            let mut off = 0;
            while off < data.len() {
                let decode = |detail: String| NetError::Decode { op, what: what.to_owned(), detail };
                let nb = NetlinkBuffer::new_checked(&data[off..]).map_err(|e| decode(e.to_string()))?;
                let len = (nb.length() as usize).max(16);
                let chunk = &data[off..(off + len).min(data.len())];
                off += len.next_multiple_of(4);
                let msg = NetlinkMessage::<I>::deserialize(chunk).map_err(|e| decode(format!("{e:?}")))?;
                if msg.header.sequence_number != seq {
                    continue; // a late reply to an earlier request
                }
                match msg.payload {
                    NetlinkPayload::InnerMessage(i) => replies.push(i),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(replies),
                        Some(code) => {
                            let errno = -code.get();
                            let ext = ext_ack_text(msg.header.flags, &e.header);
                            let mut text = strerror(errno);
                            if let Some(t) = ext {
                                text = format!("{text}: {t}");
                            }
                            return Err(NetError::Kernel {
                                op,
                                what: what.to_owned(),
                                errno,
                                msg: text,
                                hint: super::hint(errno),
                            });
                        }
                    },
                    NetlinkPayload::Done(d) => {
                        if d.code != 0 {
                            let errno = -d.code;
                            return Err(NetError::Kernel {
                                op,
                                what: what.to_owned(),
                                errno,
                                msg: strerror(errno),
                                hint: super::hint(errno),
                            });
                        }
                        return Ok(replies);
                    }
                    _ => {}
                }
            }
            if !dump && replies.len() > 4096 {
                return Err(NetError::Decode { op, what: what.to_owned(), detail: "no ack after 4096 replies".into() });
            }
        }
    }
}

/// The C library's text for `errno`, without std's " (os error N)" (the errno is shown
/// by [`NetError::Kernel`] itself).
pub(crate) fn strerror(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// The extended-ack text of an NLMSG_ERROR whose payload after the error code is
/// `echoed` (the request's header, whole request unless capped, then attributes).
pub(crate) fn ext_ack_text(flags: u16, echoed: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let skip =
        if flags & NLM_F_CAPPED != 0 { 16 } else { u32::from_ne_bytes(echoed.get(0..4)?.try_into().ok()?) as usize };
    let tlvs = echoed.get(skip.next_multiple_of(4)..)?;
    NlasIterator::new(tlvs).filter_map(Result::ok).find(|n: &NlaBuffer<&[u8]>| n.kind() == NLMSGERR_ATTR_MSG).map(|n| {
        let v = n.value();
        String::from_utf8_lossy(v.split(|&b| b == 0).next().unwrap_or(v)).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_ack_text_is_found_after_a_capped_header() {
        let mut echoed = vec![0u8; 16];
        echoed[0] = 40; // the request's length: ignored when capped
        let text = b"veth: peer name too long\0";
        let len = 4 + text.len();
        echoed.extend_from_slice(&(len as u16).to_ne_bytes());
        echoed.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        echoed.extend_from_slice(text);
        echoed.resize(echoed.len().next_multiple_of(4), 0);
        assert_eq!(ext_ack_text(NLM_F_ACK_TLVS | NLM_F_CAPPED, &echoed).as_deref(), Some("veth: peer name too long"));
        assert_eq!(ext_ack_text(0, &echoed), None);
        assert_eq!(ext_ack_text(NLM_F_ACK_TLVS, &echoed[..3]), None);
        assert!(!strerror(libc::EOPNOTSUPP).contains("os error"));
    }
}
