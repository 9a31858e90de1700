//! `xdpipe agent --stdio` (the traffic host's side of `bench --remote-gen`) and bench's
//! remote-generator flags. The agent turns each typed `Prepare` into `xdpipe gen` flags
//! and validates them with `gen`'s own parser, so the remote generator refuses what
//! `xdpipe gen` refuses; it runs no command it is sent.
use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use clap::Args;
use xdpipe::{
    agent::{
        Finished, FrameSpec, GenEngine, Generator, Prepare, TrialRate, serve,
        ssh::{RemoteAgent, SshOptions, SshTarget, safe_path},
    },
    generator::{GenConfig, generate},
    run::RunConfig,
    stats::WorkerCounters,
    veth::Receiver,
};
use xdpipe_bench::{Trial, scenario::Target};

use super::{CliError, refuse};

#[derive(Args, Clone, Debug)]
pub struct AgentArgs {
    /// Speak the agent protocol on stdin/stdout (the only transport; ssh provides it).
    #[arg(long, required = true)]
    pub stdio: bool,
}

/// The generator's flags for `p` at `rate` for `secs` seconds.
fn gen_argv(p: &Prepare, rate: TrialRate, secs: f64) -> Vec<String> {
    let mac = p.dst_mac.map(|b| format!("{b:02x}")).join(":");
    let size = match p.size {
        FrameSpec::Bytes(n) => n.to_string(),
        FrameSpec::Imix => "imix".into(),
    };
    let rate = match rate {
        TrialRate::Max => "max".to_owned(),
        TrialRate::Pps(p) => format!("{:.0}", p.max(1.0)),
    };
    let engine = match p.engine {
        GenEngine::Xsk => "xsk",
        GenEngine::XdpLive => "xdp-live",
    };
    [
        "xdpipe",
        "gen",
        "--iface",
        &p.iface,
        "--size",
        &size,
        "--flows",
        &p.flows.to_string(),
        "--engine",
        engine,
        "--dst-mac",
        &mac,
        "--src-ip",
        &p.src_ip.to_string(),
        "--dst-ip",
        &p.dst_ip.to_string(),
        "--rate",
        &rate,
        "--duration",
        &secs.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// `p` through `xdpipe gen`'s parser and validation.
fn gen_config(p: &Prepare, rate: TrialRate, secs: f64) -> Result<GenConfig, String> {
    use clap::Parser as _;
    if p.iface.is_empty() || p.iface.len() > 15 || p.iface.contains(['/', ' ', '\0']) {
        return Err(format!("interface {:?}: not an interface name (1 to 15 characters, no '/' or space)", p.iface));
    }
    if !(secs > 0.0 && secs < 1e6) {
        return Err(format!("a trial of {secs} s: give a positive number of seconds"));
    }
    let cli = super::Cli::try_parse_from(gen_argv(p, rate, secs)).map_err(|e| e.render().to_string())?;
    let super::Cmd::Gen(g) = cli.cmd else { unreachable!("parsed as gen") };
    Ok(g.validate().map_err(|e| e.0)?.config)
}

struct LocalGenerator;

impl Generator for LocalGenerator {
    fn prepare(&mut self, p: &Prepare) -> Result<(), String> {
        gen_config(p, TrialRate::Max, 1.0)?;
        if xdpipe::sys::ifindex(&p.iface).is_none() {
            return Err(format!(
                "interface {:?}: not on the traffic host (see `ip link` there); give its port with --remote-gen-iface",
                p.iface
            ));
        }
        Ok(())
    }

    fn trial(&mut self, p: &Prepare, rate: TrialRate, secs: f64, stop: Arc<AtomicBool>) -> Result<Finished, String> {
        let cfg = gen_config(p, rate, secs)?;
        let s = generate(&cfg, stop, &WorkerCounters::default()).map_err(|e| e.to_string())?;
        Ok(Finished { sent: s.sent, completed: s.completed, tx_pps: s.pps, duration_s: s.duration_s })
    }
}

pub fn cmd_agent(_a: &AgentArgs) -> anyhow::Result<ExitCode> {
    // Only warnings on stderr (ssh hands it back to the client); stdout is the protocol's.
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let signal = super::stop_on_signals()?;
    let mut g = LocalGenerator;
    serve(std::io::stdin(), std::io::stdout().lock(), &mut g, &signal)?;
    Ok(ExitCode::SUCCESS)
}

/// bench's flags for a generator on another host.
#[derive(Args, Clone, Debug, Default)]
pub struct RemoteArgs {
    /// With --target nic:IFACE: run the generator on another host, as `xdpipe agent
    /// --stdio` started there over OpenSSH (your keys, BatchMode=yes, the host key checked
    /// against known_hosts). Instead of --gen-iface.
    #[arg(long, value_name = "ssh://USER@HOST[:PORT]")]
    pub remote_gen: Option<String>,
    /// The traffic host's port cabled to the target port, which its generator sends from.
    #[arg(long, value_name = "IFACE")]
    pub remote_gen_iface: Option<String>,
    /// The private key ssh logs in with (default: your keys and ssh-agent).
    #[arg(long, value_name = "FILE")]
    pub ssh_identity: Option<PathBuf>,
    /// The known_hosts file the host key must be in, and the only one read (default:
    /// ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts).
    #[arg(long, value_name = "FILE")]
    pub ssh_known_hosts: Option<PathBuf>,
    /// The xdpipe binary on the traffic host (a name on its PATH, or a path).
    #[arg(long, value_name = "PATH", default_value = "xdpipe")]
    pub remote_xdpipe: String,
}

/// A validated remote generator.
#[derive(Clone, Debug)]
pub struct RemoteGen {
    pub target: SshTarget,
    pub ssh: SshOptions,
    /// The traffic host's port.
    pub iface: String,
}

/// A path for an ssh option: safe characters only (ssh expands `%` and `~` in these).
fn ssh_path(flag: &str, p: &Option<PathBuf>) -> Result<Option<PathBuf>, CliError> {
    let Some(p) = p else { return Ok(None) };
    let s = p.to_str().unwrap_or("");
    if !safe_path(s) {
        refuse!(
            "{flag} {}: give a path of letters, digits and / . _ + - only (ssh reads % and ~ in it), e.g. /root/.ssh/id_ed25519",
            p.display()
        );
    }
    if !p.is_file() {
        refuse!("{flag} {}: no such file", p.display());
    }
    Ok(Some(p.clone()))
}

impl RemoteArgs {
    /// Checks the remote flags against the target and --gen-iface.
    pub fn validate(&self, target: &Target, gen_iface: Option<&str>) -> Result<Option<RemoteGen>, CliError> {
        let Some(url) = &self.remote_gen else {
            if self.remote_gen_iface.is_some()
                || self.ssh_identity.is_some()
                || self.ssh_known_hosts.is_some()
                || self.remote_xdpipe != "xdpipe"
            {
                refuse!(
                    "--remote-gen-iface, --ssh-identity, --ssh-known-hosts and --remote-xdpipe go with --remote-gen ssh://USER@HOST; add it or drop them"
                );
            }
            return Ok(None);
        };
        let target_ok = matches!(target, Target::Nic(_));
        if !target_ok {
            refuse!("--remote-gen: only --target nic:IFACE takes a remote generator (the target is {target})");
        }
        if let Some(g) = gen_iface {
            refuse!("--remote-gen and --gen-iface {g}: the generator runs on one host; give one of them");
        }
        let target: SshTarget = url.parse().map_err(|e| CliError(format!("--remote-gen {e}")))?;
        let Some(iface) = self.remote_gen_iface.clone() else {
            refuse!("--remote-gen: give --remote-gen-iface IFACE, the traffic host's port cabled to the target port");
        };
        if iface.is_empty()
            || iface.len() > 15
            || !iface.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
        {
            refuse!("--remote-gen-iface {iface:?}: not an interface name (1 to 15 letters, digits, . _ - @)");
        }
        if !safe_path(&self.remote_xdpipe) {
            refuse!(
                "--remote-xdpipe {:?}: give a path of letters, digits and / . _ + - only (the remote shell reads the command), e.g. /usr/local/bin/xdpipe",
                self.remote_xdpipe
            );
        }
        let ssh = SshOptions {
            identity: ssh_path("--ssh-identity", &self.ssh_identity)?,
            known_hosts: ssh_path("--ssh-known-hosts", &self.ssh_known_hosts)?,
            remote_xdpipe: self.remote_xdpipe.clone(),
        };
        Ok(Some(RemoteGen { target, ssh, iface }))
    }
}

/// The source and destination addresses of the remote generator's frames (those of the
/// local nic runs, so the receiver sees the same traffic).
pub fn remote_ips() -> (Ipv4Addr, Ipv4Addr) {
    let p = |s: &str| s.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
    (p(xdpipe::testbed::TX_IP), p(xdpipe::testbed::RX_IP))
}

/// A connected remote generator.
pub struct RemoteRun {
    pub agent: RemoteAgent,
    /// The traffic host's port.
    pub iface: String,
}

/// Connects to the agent (ssh, handshake), before anything is made here.
pub fn connect(remote: Option<RemoteGen>) -> anyhow::Result<Option<RemoteRun>> {
    let Some(r) = remote else { return Ok(None) };
    eprintln!("bench: starting the agent on {} over ssh", r.target);
    let agent =
        RemoteAgent::connect(&r.target, &r.ssh).map_err(|e| anyhow::anyhow!("--remote-gen {}: {e}", r.target))?;
    Ok(Some(RemoteRun { agent, iface: r.iface }))
}

/// The run's notes and environment for a remote generator.
pub fn describe(r: &RemoteRun, rx: &str, notes: &mut Vec<String>, env: &mut BTreeMap<String, String>) {
    let host = &r.agent.target().host;
    *notes = vec![
        format!("NIC: generator on {host} port {} (xdpipe agent over ssh) cabled to {rx}", r.iface),
        "two hosts: their clocks are not shared, so no one-way latency is reported".into(),
    ];
    env.insert("generator port".into(), format!("{} on {host} (xdpipe agent over ssh)", r.iface));
}

/// One trial with the generator on the traffic host: the receiver `rx` runs here on
/// `rx_iface`, the agent sends at `rate`; `sent` comes from the agent, `received` from
/// the receiver.
#[allow(clippy::too_many_arguments)]
pub fn remote_trial(
    r: &mut RemoteRun,
    rx_iface: &str,
    rx: RunConfig,
    (size, engine, flows): (FrameSpec, GenEngine, u16),
    rate: TrialRate,
    secs: f64,
    stop: &AtomicBool,
) -> Result<Trial, String> {
    let dst_mac = xdpipe::sys::iface_mac(rx_iface).map_err(|e| format!("reading the MAC of {rx_iface}: {e}"))?;
    let (src_ip, dst_ip) = remote_ips();
    let p = Prepare { iface: r.iface.clone(), size, flows, engine, dst_mac, src_ip, dst_ip };
    r.agent.prepare(&p).map_err(|e| e.to_string())?;
    let rx = RunConfig { iface: rx_iface.into(), stamps: true, ..rx };
    // Dropped on an error below: stopped and joined.
    let receiver = Receiver::start("receiver", None, rx).map_err(|e| format!("{e:#}"))?;
    let f = r.agent.trial(rate, secs, stop).map_err(|e| e.to_string())?;
    // Let the last frames land.
    std::thread::sleep(Duration::from_millis(300));
    let s = receiver.finish().map_err(|e| format!("{e:#}"))?;
    let cpu: u64 = s.queues.iter().map(|q| q.counters.cpu_ns).sum();
    Ok(Trial {
        sent: f.sent,
        received: s.rx_packets,
        tx_pps: f.tx_pps,
        rx_pps: s.active_rx_pps,
        duration_s: secs,
        latency: None,
        rx_cpu_ns_per_pkt: (s.rx_packets > 0).then(|| cpu as f64 / s.rx_packets as f64),
        duplicates: s.accounting.as_ref().map(|a| a.duplicates),
        // The runner probes the trial.
        noise: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prep() -> Prepare {
        Prepare {
            iface: "lo".into(),
            size: FrameSpec::Bytes(64),
            flows: 64,
            engine: GenEngine::Xsk,
            dst_mac: [2, 0, 0, 0, 0, 0xab],
            src_ip: Ipv4Addr::new(10, 77, 0, 2),
            dst_ip: Ipv4Addr::new(10, 77, 0, 1),
        }
    }

    #[test]
    fn the_agent_validates_settings_as_gen_does() {
        let c = gen_config(&prep(), TrialRate::Pps(1234.4), 2.0).unwrap();
        assert_eq!((c.iface.as_str(), c.flows, c.dst_mac), ("lo", 64, [2, 0, 0, 0, 0, 0xab]));
        assert_eq!(c.rate, xdpipe::generator::Rate::Pps(1234.0));
        let e = gen_config(&Prepare { flows: 0, ..prep() }, TrialRate::Max, 1.0).unwrap_err();
        assert!(e.contains("--flows 0"), "{e}");
        let e = gen_config(&Prepare { size: FrameSpec::Bytes(9019), ..prep() }, TrialRate::Max, 1.0).unwrap_err();
        assert!(e.contains("--size 9019"), "{e}");
        // Jumbo frames go out multi-buffer.
        assert!(gen_config(&Prepare { size: FrameSpec::Bytes(9018), ..prep() }, TrialRate::Max, 1.0).is_ok());
        let e = gen_config(&Prepare { engine: GenEngine::XdpLive, ..prep() }, TrialRate::Pps(5.0), 1.0).unwrap_err();
        assert!(e.contains("xdp-live"), "{e}");
        // An interface name cannot smuggle a flag in.
        let e = gen_config(&Prepare { iface: "--i-know-this-is-my-uplink".into(), ..prep() }, TrialRate::Max, 1.0)
            .unwrap_err();
        assert!(e.contains("not an interface name"), "{e}");
        let e = gen_config(&prep(), TrialRate::Max, -1.0).unwrap_err();
        assert!(e.contains("positive number of seconds"), "{e}");
    }

    #[test]
    fn remote_flags_are_checked_together() {
        let nic = Target::Nic("eth1".into());
        let base = RemoteArgs {
            remote_gen: Some("ssh://root@10.0.0.2:2222".into()),
            remote_gen_iface: Some("eth2".into()),
            remote_xdpipe: "xdpipe".into(),
            ..Default::default()
        };
        let r = base.validate(&nic, None).unwrap().unwrap();
        assert_eq!((r.target.port, r.iface.as_str()), (Some(2222), "eth2"));
        assert!(
            RemoteArgs { remote_xdpipe: "xdpipe".into(), ..Default::default() }.validate(&nic, None).unwrap().is_none()
        );
        let e = |a: RemoteArgs, t: &Target, g: Option<&str>| a.validate(t, g).unwrap_err().0;
        assert!(e(base.clone(), &nic, Some("eth3")).contains("give one of them"));
        assert!(e(base.clone(), &Target::Veth, None).contains("only --target nic"));
        assert!(
            e(RemoteArgs { remote_gen: Some("root@h".into()), ..base.clone() }, &nic, None).contains("ssh://USER@HOST")
        );
        assert!(e(RemoteArgs { remote_gen_iface: None, ..base.clone() }, &nic, None).contains("--remote-gen-iface"));
        assert!(
            e(RemoteArgs { remote_xdpipe: "xdpipe; reboot".into(), ..base.clone() }, &nic, None)
                .contains("--remote-xdpipe")
        );
        assert!(
            e(RemoteArgs { ssh_identity: Some("/nonexistent/key".into()), ..base.clone() }, &nic, None)
                .contains("no such file")
        );
        assert!(
            e(RemoteArgs { ssh_known_hosts: Some("/tmp/%h".into()), ..base.clone() }, &nic, None)
                .contains("ssh reads %")
        );
        let stray = RemoteArgs { remote_gen: None, ..base };
        assert!(e(stray, &nic, None).contains("go with --remote-gen"));
    }
}
