//! `xdpipe bench --target vm:*`: the same matrix in the QEMU guest of scripts/vm.
use std::{
    path::PathBuf,
    process::{Command, ExitCode},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::Context as _;
use xdpipe::guest::Guest;
use xdpipe_bench::{config::BenchConfig, scenario::VmKind};

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

/// `--target vm:igb|vm:virtio`: boots the QEMU guest, runs the same matrix there with
/// `--target nic:` on the guest's cabled pair (labelled emulated), copies the run back.
pub fn bench_in_guest(cfg: &BenchConfig, kind: VmKind, stop: &Arc<AtomicBool>) -> anyhow::Result<ExitCode> {
    let (rx, tx) = match kind {
        VmKind::Igb => ("igb1", "igb0"),
        VmKind::Virtio => ("vio1", "vio0"),
    };
    let (a, m) = (&cfg.procedure, &cfg.matrix);
    let exe = std::env::current_exe().context("finding the xdpipe binary")?;
    let state = std::env::temp_dir().join(format!("xdpipe-vm-bench-{}", std::process::id()));
    // Stopped on every way out (drop).
    let guest = Guest::start(&guest_script()?, state, &exe, false).map_err(anyhow::Error::msg)?;
    fn list<T: ToString>(v: &[T]) -> String {
        v.iter().map(T::to_string).collect::<Vec<_>>().join(",")
    }
    let mut args: Vec<String> = vec![
        "bench".into(),
        "--target".into(),
        format!("nic:{rx}"),
        "--gen-iface".into(),
        tx.into(),
        "--emulated-as".into(),
        format!("vm:{kind}"),
        "--out".into(),
        "/host/runs".into(),
        "--anchors".into(),
        "off".into(),
        "--xdp-modes".into(),
        list(&m.xdp_modes),
        "--modes".into(),
        list(&m.modes),
        "--engines".into(),
        list(&m.engines),
        "--waits".into(),
        list(&m.waits),
        "--binds".into(),
        list(&m.binds),
        "--offloads".into(),
        list(&m.offloads),
        "--queues".into(),
        list(&m.queues),
        "--sizes".into(),
        list(&m.sizes),
        "--trials".into(),
        a.trials.to_string(),
        "--trial-secs".into(),
        a.trial_secs.to_string(),
        "--search-secs".into(),
        a.search.search_secs.to_string(),
        "--latency-fraction".into(),
        a.latency_fraction.to_string(),
    ];
    if !a.zero_loss {
        args.push("--no-search".into());
    }
    // igb hashes UDP on addresses only by default: add the ports so flows spread.
    let job = format!(
        "ethtool -N {rx} rx-flow-hash udp4 sdfn 2>/dev/null; xdpipe {}",
        args.iter().map(|x| format!("'{x}'")).collect::<Vec<_>>().join(" ")
    );
    eprintln!("bench: running in the guest: {job}");
    let st = guest.exec_shown(&job, 86400).context("running guest.sh exec")?;
    let runs = guest.share().join("runs");
    std::fs::create_dir_all(&cfg.out).with_context(|| format!("creating {}", cfg.out.display()))?;
    let mut copied = Vec::new();
    for e in std::fs::read_dir(&runs).into_iter().flatten().flatten() {
        let to = cfg.out.join(e.file_name());
        let ok = Command::new("cp").arg("-r").arg(e.path()).arg(&to).status().is_ok_and(|s| s.success());
        anyhow::ensure!(ok, "copying {} to {}", e.path().display(), to.display());
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
