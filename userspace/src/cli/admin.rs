//! The small commands: `testbed`, `cleanup`, `features`, `napi`.
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum TestbedAction {
    /// Create namespaces xdpipe-NAME-rx (xp-rx, 10.77.0.1) and xdpipe-NAME-tx (xp-tx, 10.77.0.2).
    Create {
        #[arg(long, default_value = "demo")]
        name: String,
        /// RX/TX queues on each veth end.
        #[arg(long, default_value_t = 1)]
        queues: u32,
    },
    /// Remove the testbed's namespaces (and the veth pair with them).
    Destroy {
        #[arg(long, default_value = "demo")]
        name: String,
    },
}

/// The index of `iface`, or an error that says how to find the right name.
fn ifindex(iface: &str) -> anyhow::Result<u32> {
    xdpipe::sys::ifindex(iface).ok_or_else(|| {
        anyhow::anyhow!("no interface named {iface:?} in this network namespace; list them with `ip link`")
    })
}

pub fn cmd_features(iface: &str, json: bool) -> anyhow::Result<ExitCode> {
    let ifindex = ifindex(iface)?;
    let f = xdpipe::netdev::xdp_features(ifindex).with_context(|| format!("reading the XDP features of {iface}"))?;
    if json {
        super::print_json(&f)?;
    } else {
        println!("{iface}: {}", f.describe());
        println!("{iface}: {}", f.describe_rx_metadata());
        println!("{iface}: {}", f.describe_xsk());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn cmd_napi(iface: &str, json: bool) -> anyhow::Result<ExitCode> {
    let ifindex = ifindex(iface)?;
    let napis = xdpipe::netdev::Netdev::open()
        .and_then(|mut nd| nd.napis(ifindex))
        .with_context(|| format!("reading the NAPI settings of {iface}"))?;
    if json {
        super::print_json(&napis)?;
    } else if napis.is_empty() {
        println!("{iface}: no NAPI instances (a veth has them only with a native XDP program or GRO on)");
    }
    let shown = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
    for n in napis.iter().filter(|_| !json) {
        println!(
            "{iface}: napi {}: defer-hard-irqs {}, gro-flush-timeout {} ns, irq-suspend-timeout {} ns",
            n.id,
            shown(n.defer_hard_irqs.map(u64::from)),
            shown(n.gro_flush_timeout_ns),
            shown(n.irq_suspend_timeout_ns)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn cmd_testbed(action: TestbedAction) -> anyhow::Result<ExitCode> {
    use xdpipe::testbed::{RX_IFACE, RX_IP, TX_IFACE, TX_IP, Testbed, delete_namespace, fmt_mac};
    match action {
        TestbedAction::Create { name, queues } => {
            let tb = Testbed::create(&name, queues)?;
            println!(
                "testbed {name}: {} {RX_IFACE} {RX_IP} {} <-> {} {TX_IFACE} {TX_IP} {}, {queues} queue(s)",
                tb.rx_ns,
                fmt_mac(&tb.rx_mac),
                tb.tx_ns,
                fmt_mac(&tb.tx_mac)
            );
            tb.keep()?;
        }
        TestbedAction::Destroy { name } => {
            xdpipe::testbed::validate_name(&name)?;
            xdpipe::testbed::forget_owner(&name);
            let mut found = false;
            for ns in [format!("xdpipe-{name}-rx"), format!("xdpipe-{name}-tx")] {
                if std::path::Path::new("/run/netns").join(&ns).exists() {
                    delete_namespace(&ns)?;
                    found = true;
                }
            }
            if !found {
                anyhow::bail!(
                    "no testbed named {name:?} (no namespace xdpipe-{name}-rx or -tx); `ip netns` lists them"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn cmd_cleanup(all: bool) -> anyhow::Result<ExitCode> {
    use xdpipe::testbed::{Owner, delete_namespace, forget_owner, testbed_of, testbed_owner, xdpipe_namespaces};
    let mut removed = 0;
    // Knobs first: a record may name a namespace removed below.
    for line in xdpipe::knobs::restore_orphans() {
        eprintln!("cleanup: {line}");
        removed += 1;
    }
    // A testbed's two namespaces share one record: judge it once, forget it after both.
    let mut testbeds: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for ns in xdpipe_namespaces() {
        if ns.starts_with("xdpipe-vm-") {
            removed += cleanup_guest(&ns, all)?;
            continue;
        }
        testbeds.entry(testbed_of(&ns).unwrap_or(&ns).to_owned()).or_default().push(ns);
    }
    for (name, namespaces) in testbeds {
        let owner = testbed_owner(&name);
        if !all && owner != Owner::Gone {
            for ns in &namespaces {
                eprintln!(
                    "cleanup: keeping {ns}: {}; --all removes it",
                    why_kept(&owner, xdpipe::testbed::OWNER_DIR, &name)
                );
            }
            continue;
        }
        for ns in &namespaces {
            delete_namespace(ns)?;
            eprintln!("cleanup: removed namespace {ns}");
            removed += 1;
        }
        forget_owner(&name);
    }
    if removed == 0 {
        eprintln!(
            "cleanup: no leftovers removed. XDP programs need no cleanup: xdpipe attaches them through \
             BPF links, which the kernel detaches when the owning process ends, even by SIGKILL"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Why cleanup leaves a namespace alone.
fn why_kept(owner: &xdpipe::testbed::Owner, dir: &str, name: &str) -> String {
    use xdpipe::testbed::Owner;
    match owner {
        Owner::NoRecord => {
            format!("no owner record {dir}/{name}, so nothing shows xdpipe made it or that its owner is gone")
        }
        Owner::Kept => "created with `xdpipe testbed create` (`xdpipe testbed destroy --name NAME` removes it)".into(),
        Owner::Running => "its owner process (same pid and start time as recorded) is running".into(),
        Owner::Gone => "its owner is gone".into(),
        Owner::Unreadable(r) => format!("its owner record {dir}/{name} does not read as \"pid starttime\" ({r:?})"),
    }
}

/// The guest namespaces' owner records (written by scripts/vm/guest.sh).
const VM_RECORDS: &str = "/run/xdpipe/vms";

/// A QEMU guest of scripts/vm/guest.sh: its namespace holds QEMU and the taps. Orphaned
/// when the process that started it (recorded with its start time in
/// /run/xdpipe/vms/NS) is gone: the QEMU processes in the namespace are killed and the
/// namespace removed. Without a matching record nothing is killed. Returns 1 if it
/// removed it.
fn cleanup_guest(ns: &str, all: bool) -> anyhow::Result<usize> {
    use xdpipe::testbed::Owner;
    let owner = xdpipe::testbed::owner_of(VM_RECORDS, ns);
    if !all && owner != Owner::Gone {
        eprintln!("cleanup: keeping guest namespace {ns}: {}; --all removes it", why_kept(&owner, VM_RECORDS, ns));
        return Ok(0);
    }
    for pid in xdpipe::net::ns::pids(ns)? {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if !comm.trim_end().starts_with("qemu-system") {
            anyhow::bail!(
                "guest namespace {ns} holds process {pid} ({}), which is not QEMU; not killing it. \
                 Stop it yourself, then run `xdpipe cleanup` again",
                comm.trim_end()
            );
        }
        xdpipe::sys::send_signal(pid, libc::SIGKILL);
        eprintln!("cleanup: killed QEMU (pid {pid}) of guest namespace {ns}");
    }
    xdpipe::testbed::delete_namespace(ns)?;
    if xdpipe::testbed::validate_record_name(ns).is_ok() {
        let _ = std::fs::remove_file(format!("{VM_RECORDS}/{ns}"));
    }
    eprintln!("cleanup: removed guest namespace {ns}");
    Ok(1)
}
