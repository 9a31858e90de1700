//! The steering program's XDP RX metadata kfunc calls, and loading it bound to a device.
//!
//! `xdpipe_steer` calls `bpf_xdp_metadata_rx_timestamp`, `_rx_hash` and `_rx_vlan_tag`
//! (declared `extern "C"` in xdp-ebpf). bpf-linker 0.13 leaves each as `call -1` with
//! src_reg 1 and an R_BPF_64_32 relocation against an undefined symbol, and emits no BTF
//! for it; aya 0.14 resolves neither kfunc calls nor such relocations (it would take the
//! call for a local one and fail), and cannot load a program bound to a device
//! (`prog_ifindex` with BPF_F_XDP_DEV_BOUND_ONLY), which the kernel requires of any
//! program calling these kfuncs ("metadata kfuncs require device-bound program").
//!
//! So, before aya sees the object, [`patch_kfunc_calls`] rewrites each call: either into
//! a kfunc call (src_reg BPF_PSEUDO_KFUNC_CALL, imm the function's id in the kernel's
//! BTF, as libbpf does for a `__ksym` extern), or into `r0 = -EOPNOTSUPP`, what the kernel
//! itself returns where the driver has no implementation. The program handles both as
//! "no value". The second form is what aya loads (every program not bound to a device:
//! skb mode, test runs, the in-kernel generator); [`load_dev_bound`] loads the first with
//! aya-obj's relocations against the maps aya created, and [`attach_link`] attaches it in
//! driver mode with a BPF link owned by the caller.
// Raw bpf(2) calls and a byte view of an aligned buffer; each block says why it is sound.
#![allow(unsafe_code)]
use std::{
    collections::{HashMap, HashSet},
    ffi::CString,
    io,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd},
    sync::OnceLock,
};

use aya::{Ebpf, maps::Map};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget};

/// The kfuncs the steering program may call, in the order of [`KfuncIds`].
pub const KFUNCS: [&str; 3] =
    ["bpf_xdp_metadata_rx_timestamp", "bpf_xdp_metadata_rx_hash", "bpf_xdp_metadata_rx_vlan_tag"];

/// Each of [`KFUNCS`]'s id in the running kernel's BTF, if it has one.
pub type KfuncIds = [Option<u32>; 3];

const BPF_JMP_CALL: u8 = 0x85;
const BPF_ALU64_MOV_K: u8 = 0xb7;
const BPF_PSEUDO_KFUNC_CALL: u8 = 2;
const R_BPF_64_32: u32 = 10;
const BPF_F_XDP_DEV_BOUND_ONLY: u32 = 1 << 6;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;

/// Why the object could not be patched or the bound program not loaded.
#[derive(Debug, thiserror::Error)]
pub enum BoundError {
    /// The embedded object is not what the build should have produced.
    #[error("the XDP object cannot be patched: {0}; the build is broken")]
    Object(String),
    /// The kernel refused the device-bound program; `log` is the verifier's last lines.
    #[error("loading the device-bound program failed: {source}{log}")]
    Load {
        /// The error of BPF_PROG_LOAD.
        source: io::Error,
        /// The verifier log (empty, or starting with a newline).
        log: String,
    },
}

/// An ELF object held 8-byte aligned (the object parsers read its headers in place).
pub struct ObjectBytes {
    words: Vec<u64>,
    len: usize,
}

impl ObjectBytes {
    fn new(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            *w = u64::from_ne_bytes(b);
        }
        Self { words, len: bytes.len() }
    }

    /// The object's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `words` holds at least `len` initialised bytes (new), and u8 has no
        // alignment or validity requirements.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as `bytes`, and `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

/// A copy of `elf` in which every call to one of [`KFUNCS`] is a kfunc call to the id in
/// `ids` or, where `ids` is None or has no id for it, `r0 = -EOPNOTSUPP`. Returns the
/// copy and how many calls it rewrote into kfunc calls.
pub fn patch_kfunc_calls(elf: &[u8], ids: Option<&KfuncIds>) -> Result<(ObjectBytes, usize), BoundError> {
    let bad = |what: String| BoundError::Object(what);
    let file = object::File::parse(elf).map_err(|e| bad(e.to_string()))?;
    // (file offset of the instruction, which kfunc)
    let mut sites = Vec::new();
    for section in file.sections() {
        let Some((sec_off, sec_len)) = section.file_range() else { continue };
        for (off, rel) in section.relocations() {
            let RelocationTarget::Symbol(sym) = rel.target() else { continue };
            let Ok(sym) = file.symbol_by_index(sym) else { continue };
            if !sym.is_undefined() {
                continue;
            }
            let Some(which) = sym.name().ok().and_then(|n| KFUNCS.iter().position(|k| *k == n)) else { continue };
            let object::RelocationFlags::Elf { r_type } = rel.flags() else { continue };
            if r_type != R_BPF_64_32 || off.checked_add(8).is_none_or(|end| end > sec_len) {
                return Err(bad(format!("relocation of {} at {off:#x} is not a call", KFUNCS[which])));
            }
            sites.push(((sec_off + off) as usize, which));
        }
    }
    let mut out = ObjectBytes::new(elf);
    let bytes = out.bytes_mut();
    let mut resolved = 0;
    for (at, which) in sites {
        let insn = bytes.get_mut(at..at + 8).ok_or_else(|| bad(format!("call site {at:#x} outside the file")))?;
        if insn[0] != BPF_JMP_CALL {
            return Err(bad(format!("{} is referenced by a non-call instruction", KFUNCS[which])));
        }
        match ids.and_then(|ids| ids[which]) {
            Some(id) => {
                insn[1] = BPF_PSEUDO_KFUNC_CALL << 4; // src_reg 2, dst_reg 0
                insn[2..4].copy_from_slice(&0i16.to_le_bytes()); // off 0: vmlinux BTF
                insn[4..8].copy_from_slice(&(id as i32).to_le_bytes());
                resolved += 1;
            }
            None => {
                insn[0] = BPF_ALU64_MOV_K;
                insn[1] = 0; // r0
                insn[2..4].copy_from_slice(&0i16.to_le_bytes());
                insn[4..8].copy_from_slice(&(-libc::EOPNOTSUPP).to_le_bytes());
            }
        }
    }
    Ok((out, resolved))
}

/// [`KFUNCS`]' ids in the running kernel's BTF (/sys/kernel/btf/vmlinux), looked up once.
/// None if the kernel has no BTF.
pub fn kernel_kfunc_ids() -> Option<&'static KfuncIds> {
    static IDS: OnceLock<Option<KfuncIds>> = OnceLock::new();
    IDS.get_or_init(|| {
        let btf = match aya::Btf::from_sys_fs() {
            Ok(btf) => btf,
            Err(e) => {
                log::info!("no kernel BTF ({e}): XDP RX metadata kfuncs unavailable");
                return None;
            }
        };
        Some(KFUNCS.map(|name| btf.id_by_type_name_kind(name, aya_obj::btf::BtfKind::Func).ok()))
    })
    .as_ref()
}

/// The map's file descriptor, for the map kinds the steering object has.
fn map_fd(map: &Map) -> Option<RawFd> {
    match map {
        Map::Array(d) | Map::PerCpuArray(d) | Map::XskMap(d) | Map::HashMap(d) | Map::Unsupported(d) => {
            Some(d.fd().as_fd().as_raw_fd())
        }
        _ => None,
    }
}

/// Loads `program` of `object` (patched with kfunc ids) bound to `ifindex`
/// (BPF_F_XDP_DEV_BOUND_ONLY), its map references pointing at the maps of `ebpf`, which
/// aya loaded from the same object. The program can then only be attached to that
/// device, in driver mode.
pub fn load_dev_bound(ebpf: &Ebpf, object: &[u8], program: &str, ifindex: u32) -> Result<OwnedFd, BoundError> {
    let bad = |what: String| BoundError::Object(what);
    let mut obj = aya_obj::Object::parse(object).map_err(|e| bad(e.to_string()))?;
    let mut fds = HashMap::new();
    for name in obj.maps.keys() {
        let fd = ebpf.map(name).and_then(map_fd).ok_or_else(|| bad(format!("aya created no map {name}")))?;
        fds.insert(name.clone(), fd);
    }
    let text_sections: HashSet<usize> = obj.functions.keys().map(|(section, _)| *section).collect();
    let maps: Vec<(String, RawFd, aya_obj::Map)> =
        obj.maps.iter().map(|(name, map)| (name.clone(), fds[name], map.clone())).collect();
    obj.relocate_maps(maps.iter().map(|(n, fd, m)| (n.as_str(), *fd, m)), &text_sections)
        .map_err(|e| bad(e.to_string()))?;
    obj.relocate_calls(&text_sections).map_err(|e| bad(e.to_string()))?;
    let prog = obj.programs.get(program).ok_or_else(|| bad(format!("no program {program}")))?;
    let insns =
        &obj.functions.get(&prog.function_key()).ok_or_else(|| bad(format!("no code for {program}")))?.instructions;
    let license = CString::new(obj.license.as_bytes()).map_err(|e| bad(e.to_string()))?;

    let try_load = |log: &mut [u8]| -> io::Result<OwnedFd> {
        // SAFETY: bpf_attr is plain integers; all-zero is the "unset" value of each field.
        let mut attr: aya_obj::generated::bpf_attr = unsafe { std::mem::zeroed() };
        // SAFETY: writing the BPF_PROG_LOAD member of a zeroed union.
        let u = unsafe { &mut attr.__bindgen_anon_3 };
        u.prog_type = BPF_PROG_TYPE_XDP;
        u.expected_attach_type = BPF_XDP;
        u.insns = insns.as_ptr() as u64;
        u.insn_cnt = insns.len() as u32;
        u.license = license.as_ptr() as u64;
        u.prog_flags = BPF_F_XDP_DEV_BOUND_ONLY;
        u.prog_ifindex = ifindex;
        for (d, s) in u.prog_name.iter_mut().zip(program.bytes().take(15)) {
            *d = s as libc::c_char;
        }
        if !log.is_empty() {
            u.log_level = 1;
            u.log_buf = log.as_mut_ptr() as u64;
            u.log_size = log.len() as u32;
        }
        sys_bpf(BPF_PROG_LOAD, &mut attr)
    };
    match try_load(&mut []) {
        Ok(fd) => Ok(fd),
        Err(source) => {
            // Again with the verifier's log, for the message.
            let mut log = vec![0u8; 1 << 16];
            let _ = try_load(&mut log);
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let tail: Vec<&str> = text.lines().rev().take(8).collect();
            let log = tail.iter().rev().fold(String::new(), |acc, l| acc + "\n  " + l);
            Err(BoundError::Load { source, log })
        }
    }
}

/// Attaches `prog` to `ifindex` with a BPF link (BPF_LINK_CREATE, attach type BPF_XDP)
/// and `xdp_flags` (XDP_FLAGS_DRV_MODE...). Closing the returned link detaches it.
pub fn attach_link(prog: BorrowedFd<'_>, ifindex: u32, xdp_flags: u32) -> io::Result<OwnedFd> {
    // SAFETY: as in load_dev_bound.
    let mut attr: aya_obj::generated::bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing the BPF_LINK_CREATE member of a zeroed union.
    let l = unsafe { &mut attr.link_create };
    l.__bindgen_anon_1.prog_fd = prog.as_raw_fd() as u32;
    l.__bindgen_anon_2.target_ifindex = ifindex;
    l.attach_type = BPF_XDP;
    l.flags = xdp_flags;
    sys_bpf(BPF_LINK_CREATE, &mut attr)
}

/// The bpf(2) system call for a command that returns a new file descriptor.
fn sys_bpf(cmd: libc::c_long, attr: &mut aya_obj::generated::bpf_attr) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is a valid bpf_attr of the size passed, and every pointer in it
    // (instructions, license, log) outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut aya_obj::generated::bpf_attr,
            std::mem::size_of::<aya_obj::generated::bpf_attr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the call returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdpipe-steer"));

    /// The instructions at the three kfunc call sites of the patched object.
    fn call_sites(patched: &[u8]) -> Vec<[u8; 8]> {
        let file = object::File::parse(OBJECT).unwrap();
        let mut out = Vec::new();
        for section in file.sections() {
            let Some((sec_off, _)) = section.file_range() else { continue };
            for (off, rel) in section.relocations() {
                let RelocationTarget::Symbol(sym) = rel.target() else { continue };
                let name = file.symbol_by_index(sym).unwrap().name().unwrap().to_owned();
                if KFUNCS.contains(&name.as_str()) {
                    let at = (sec_off + off) as usize;
                    out.push(patched[at..at + 8].try_into().unwrap());
                }
            }
        }
        out
    }

    #[test]
    fn every_kfunc_call_becomes_a_kfunc_call_with_its_btf_id() {
        let (patched, n) = patch_kfunc_calls(OBJECT, Some(&[Some(100), Some(200), Some(300)])).unwrap();
        assert_eq!(n, 3, "the steering program calls each of the three kfuncs once");
        let mut ids: Vec<i32> = call_sites(patched.bytes())
            .iter()
            .map(|i| {
                assert_eq!((i[0], i[1]), (BPF_JMP_CALL, 0x20), "a call with src_reg BPF_PSEUDO_KFUNC_CALL");
                i32::from_le_bytes(i[4..8].try_into().unwrap())
            })
            .collect();
        ids.sort();
        assert_eq!(ids, [100, 200, 300]);
    }

    #[test]
    fn without_ids_the_calls_return_eopnotsupp_and_aya_loads_the_object() {
        let (patched, n) = patch_kfunc_calls(OBJECT, Some(&[None, Some(7), None])).unwrap();
        assert_eq!(n, 1);
        let sites = call_sites(patched.bytes());
        assert_eq!(sites.iter().filter(|i| i[0] == BPF_ALU64_MOV_K).count(), 2);
        let (stub, n) = patch_kfunc_calls(OBJECT, None).unwrap();
        assert_eq!(n, 0);
        for i in call_sites(stub.bytes()) {
            assert_eq!(i, [BPF_ALU64_MOV_K, 0, 0, 0, 0xa1, 0xff, 0xff, 0xff], "r0 = -95");
        }
        // aya-obj links the stubbed object (an unpatched one fails: the call looks local).
        let relocate = |bytes: &[u8]| -> Result<(), String> {
            let mut obj = aya_obj::Object::parse(bytes).map_err(|e| e.to_string())?;
            let text: HashSet<usize> = obj.functions.keys().map(|(s, _)| *s).collect();
            obj.relocate_calls(&text).map_err(|e| e.to_string())
        };
        relocate(stub.bytes()).unwrap();
        assert!(relocate(OBJECT).is_err(), "aya-obj now links extern calls: the patch may be unnecessary");
    }
}
