//! `xdpipe bench --target vm:*`: the same matrix in the QEMU guest of scripts/vm.
use std::{
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::Context as _;
use xdpipe::guest::Guest;
use xdpipe_bench::{
    config::BenchConfig,
    scenario::{HostDevice, VmKind},
};

/// What a `vm:` target runs on in the guest.
#[derive(Clone, Copy, Debug)]
pub enum GuestTarget {
    /// An emulated NIC pair (`vm:igb`, `vm:virtio`): `--target nic:` on its cabled ports.
    Nic(VmKind),
    /// A device topology on a veth testbed in the guest's kernel (`vm:ipvlan-l2`, ...):
    /// `--target DEVICE` there.
    Device(HostDevice),
    /// `path:kubevirt`: one run per stage of [`xdpipe_bench::chain::KUBEVIRT`], in order.
    Kubevirt,
}

/// `scripts/vm/guest.sh`, found from the binary's place in the tree (target/*/xdpipe) or
/// the working directory.
fn guest_script() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the xdpipe binary")?;
    let candidates =
        [exe.ancestors().nth(3).map(|r| r.join("scripts/vm/guest.sh")), Some(PathBuf::from("scripts/vm/guest.sh"))];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow::anyhow!("--target vm:*: scripts/vm/guest.sh not found; run from the xdpipe source tree"))
}

/// `--target vm:igb|vm:virtio|vm:DEVICE`: boots the QEMU guest, runs the same matrix
/// there (labelled emulated) with `--target nic:` on the guest's cabled pair, or with
/// `--target DEVICE` on a veth testbed in the guest, and copies the run back.
pub fn bench_in_guest(cfg: &BenchConfig, what: GuestTarget, stop: &Arc<AtomicBool>) -> anyhow::Result<ExitCode> {
    // Each stage: (shell prep, target and label flags); one stage but for path:kubevirt.
    let stages: Vec<(String, Vec<String>)> = match what {
        GuestTarget::Nic(kind) => {
            let (rx, tx) = match kind {
                VmKind::Igb => ("igb1", "igb0"),
                VmKind::Virtio => ("vio1", "vio0"),
            };
            // igb hashes UDP on addresses only by default: add the ports so flows spread.
            vec![(
                format!("ethtool -N {rx} rx-flow-hash udp4 sdfn 2>/dev/null; "),
                ["--target", &format!("nic:{rx}"), "--gen-iface", tx, "--emulated-as", &format!("vm:{kind}")]
                    .map(String::from)
                    .to_vec(),
            )]
        }
        GuestTarget::Device(d) => vec![(
            String::new(),
            ["--target", d.name(), "--emulated-as", &format!("vm:{}", d.name())].map(String::from).to_vec(),
        )],
        // The NIC stage on one queue of each igb port (every frame on queue 0, as the
        // one-queue testbed stages), then each hop in order.
        GuestTarget::Kubevirt => xdpipe_bench::chain::KUBEVIRT
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let mut t = vec!["--target".to_owned(), h.target.to_owned(), "--kubevirt-hop".into(), i.to_string()];
                let prep = match h.target.strip_prefix("nic:") {
                    Some(rx) => {
                        t.extend(["--gen-iface".into(), "igb0".into()]);
                        format!("ethtool -L {rx} combined 1 && ethtool -L igb0 combined 1 && ")
                    }
                    None => String::new(),
                };
                (prep, t)
            })
            .collect(),
    };
    let nic = matches!(what, GuestTarget::Nic(_));
    let kubevirt = matches!(what, GuestTarget::Kubevirt);
    // Every receiving device past the NIC in path:kubevirt has generic XDP only.
    let xdp_modes = if kubevirt {
        if cfg.matrix.xdp_modes.iter().any(|m| *m != xdpipe_bench::scenario::XdpMode::Skb) {
            eprintln!("bench: path:kubevirt runs every stage in skb mode (the hops' devices have no native XDP)");
        }
        vec![xdpipe_bench::scenario::XdpMode::Skb]
    } else {
        cfg.matrix.xdp_modes.clone()
    };
    let (a, m) = (&cfg.procedure, &cfg.matrix);
    let exe = std::env::current_exe().context("finding the xdpipe binary")?;
    // A fresh directory only root can use (mkdtemp, 0700): never a predictable path.
    let state = xdpipe::sys::private_temp_dir("xdpipe-vm-bench").context("making the guest's state directory")?;
    // Stopped on every way out (drop).
    let guest = Guest::start_until(&guest_script()?, state, &exe, false, Some(stop.clone()));
    let guest = match guest {
        Err(_) if stop.load(Ordering::Relaxed) => {
            eprintln!("bench: interrupted while the guest booted; it is stopped");
            return Ok(ExitCode::from(130));
        }
        g => g.map_err(anyhow::Error::msg)?,
    };
    // The tap stage's writer sends one frame size: path:kubevirt leaves imix out.
    let sizes: Vec<_> = m.sizes.iter().filter(|s| !(kubevirt && **s == xdpipe_bench::scenario::Size::Imix)).collect();
    fn list<T: ToString>(v: &[T]) -> String {
        v.iter().map(T::to_string).collect::<Vec<_>>().join(",")
    }
    let mut args: Vec<String> = vec![
        "--out".into(),
        "/host/runs".into(),
        "--anchors".into(),
        "off".into(),
        "--xdp-modes".into(),
        list(&xdp_modes),
        "--modes".into(),
        list(&m.modes),
        "--engines".into(),
        list(&m.engines),
        "--waits".into(),
        list(&m.waits),
        "--sizes".into(),
        list(&sizes),
        "--trials".into(),
        a.trials.to_string(),
        "--max-trials".into(),
        a.max_trials.to_string(),
        "--ci-width".into(),
        a.target_width.to_string(),
        "--confidence".into(),
        a.confidence.to_string(),
        "--trial-secs".into(),
        a.trial_secs.to_string(),
        "--search-secs".into(),
        a.search.search_secs.to_string(),
        "--latency-fraction".into(),
        a.latency_fraction.to_string(),
    ];
    // The device targets take one queue, copy binds and default offloads (refused
    // otherwise before the guest boots).
    if nic {
        args.extend([
            "--binds".into(),
            list(&m.binds),
            "--offloads".into(),
            list(&m.offloads),
            "--queues".into(),
            list(&m.queues),
        ]);
    }
    // The kernel-stack baselines are a device target's (here: the guest's kernel); the
    // kubevirt hops refuse them (a kernel sender would skip the hops).
    if !nic && !kubevirt && cfg.kernel_baselines {
        args.push("--kernel-baselines".into());
    }
    if let Some(b) = a.budget_secs {
        args.extend(["--budget-secs".into(), b.to_string()]);
    }
    if !a.zero_loss {
        args.push("--no-search".into());
    }
    if let Some(us) = cfg.coalesce.0 {
        args.extend(["--coalesce-us".into(), us.to_string()]);
    }
    if let Some(n) = cfg.coalesce.1 {
        args.extend(["--coalesce-frames".into(), n.to_string()]);
    }
    if let Some(c) = &a.count {
        args.extend([
            "--count-trials".into(),
            c.trials.to_string(),
            "--count-rate".into(),
            format!("{:.0}pps", c.rate_pps),
            "--count-secs".into(),
            c.secs.to_string(),
        ]);
    }
    let quoted = |v: &[String]| v.iter().map(|x| shell_quote(x)).collect::<Vec<_>>().join(" ");
    // Stages one after another; the first that fails ends the job with its status.
    let job = stages
        .iter()
        .map(|(prep, t)| format!("{prep}xdpipe bench {} {} || exit $?", quoted(t), quoted(&args)))
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!("bench: running in the guest: {job}");
    let st = guest.exec_shown(&job, 86400).context("running guest.sh exec")?;
    let runs = guest.share().join("runs");
    std::fs::create_dir_all(&cfg.out).with_context(|| format!("creating {}", cfg.out.display()))?;
    let mut copied = Vec::new();
    for e in std::fs::read_dir(&runs).into_iter().flatten().flatten() {
        let to = cfg.out.join(e.file_name());
        copy_recursive(&e.path(), &to)
            .with_context(|| format!("copying {} to {}", e.path().display(), to.display()))?;
        copied.push(to);
    }
    drop(guest);
    for c in &copied {
        println!("{}", c.display());
    }
    if stop.load(Ordering::Relaxed) {
        eprintln!("bench: interrupted; what the guest finished is in {:?}", copied);
        return Ok(ExitCode::from(130));
    }
    anyhow::ensure!(
        st.success() && !copied.is_empty(),
        "the bench in the guest failed (exit {:?}); its output is above",
        st.code()
    );
    eprintln!("bench: done; compare with a veth run: `xdpipe report {} bench/runs/<veth run>`", copied[0].display());
    Ok(ExitCode::SUCCESS)
}

/// Quotes `s` for the guest's shell: one single-quoted word (a `'` becomes `'\''`).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Copies a file or a directory tree (`cp -r FROM TO`).
fn copy_recursive(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(from)?.is_dir() {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            copy_recursive(&e.path(), &to.join(e.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to).map(|_| ())
    }
}

#[cfg(test)]
mod net_tests {
    use super::*;

    #[test]
    fn guest_words_are_quoted_and_trees_copied() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        let (stamp, iso) = crate::cli::bench::runner::utc_now();
        assert_eq!((stamp.len(), iso.len()), (15, 20));
        let d = xdpipe::sys::private_temp_dir("xdpipe-copy").unwrap();
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/b/f"), "x").unwrap();
        copy_recursive(&d.join("a"), &d.join("c")).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("c/b/f")).unwrap(), "x");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
