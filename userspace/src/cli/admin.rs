//! The small commands: `testbed`, `cleanup`, `features`.
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

pub fn cmd_features(iface: &str, json: bool) -> anyhow::Result<ExitCode> {
    let ifindex = xdpipe::sys::ifindex(iface).ok_or_else(|| {
        anyhow::anyhow!("no interface named {iface:?} in this network namespace; list them with `ip link`")
    })?;
    let f = xdpipe::netdev::xdp_features(ifindex).with_context(|| format!("reading the XDP features of {iface}"))?;
    if json {
        super::print_json(&f)?;
    } else {
        println!("{iface}: {}", f.describe());
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
            tb.keep();
        }
        TestbedAction::Destroy { name } => {
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
    use xdpipe::testbed::{delete_namespace, forget_owner, is_orphan, testbed_of, xdpipe_namespaces};
    let mut removed = 0;
    for ns in xdpipe_namespaces() {
        if ns.starts_with("xdpipe-vm-") {
            removed += cleanup_guest(&ns, all)?;
            continue;
        }
        let name = testbed_of(&ns).unwrap_or(&ns).to_owned();
        if !all && !is_orphan(&name) {
            eprintln!(
                "cleanup: keeping {ns} (its owner is running, or it was created with `xdpipe testbed create`; --all removes it)"
            );
            continue;
        }
        delete_namespace(&ns)?;
        forget_owner(&name);
        eprintln!("cleanup: removed namespace {ns}");
        removed += 1;
    }
    if removed == 0 {
        eprintln!(
            "cleanup: no leftovers removed. XDP programs need no cleanup: xdpipe attaches them through \
             BPF links, which the kernel detaches when the owning process ends, even by SIGKILL"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A QEMU guest of scripts/vm/guest.sh: its namespace holds QEMU and the taps. Orphaned
/// when the process that started it (recorded in /run/xdpipe/vms/NS) is gone: QEMU is
/// killed and the namespace removed. Returns 1 if it removed it.
fn cleanup_guest(ns: &str, all: bool) -> anyhow::Result<usize> {
    let record = format!("/run/xdpipe/vms/{ns}");
    let owner = std::fs::read_to_string(&record).ok();
    let owner_alive = owner
        .as_deref()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
    if owner_alive && !all {
        eprintln!("cleanup: keeping guest namespace {ns} (the process that started it is running; --all removes it)");
        return Ok(0);
    }
    for pid in xdpipe::net::ns::pids(ns)? {
        xdpipe::sys::send_signal(pid, libc::SIGKILL);
        eprintln!("cleanup: killed QEMU (pid {pid}) of guest namespace {ns}");
    }
    xdpipe::testbed::delete_namespace(ns)?;
    let _ = std::fs::remove_file(&record);
    eprintln!("cleanup: removed guest namespace {ns}");
    Ok(1)
}
