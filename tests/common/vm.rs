//! The QEMU guest of scripts/vm/guest.sh for the guest tests: boot it, run shell jobs in
//! it, and run `xdpipe run` on one port against `xdpipe gen` on its cabled peer.
//!
//! In the guest igb0 is cabled to igb1 and vio0 to vio1 (scripts/vm/README.md).
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;
use xdpipe::guest::Guest;

use super::{XDPIPE, u};

/// A booted guest, stopped and removed when dropped.
pub struct Vm(pub Guest);

impl Vm {
    /// Boots a guest (KVM if it can, else TCG) with this build's `xdpipe`; panics with
    /// guest.sh's output, which ends with the guest's console, if it cannot.
    pub fn boot(name: &str) -> Vm {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/vm/guest.sh");
        let deps = Command::new(&script).arg("deps").output().expect("running scripts/vm/guest.sh deps");
        assert!(deps.status.success(), "guest.sh deps failed:\n{}", String::from_utf8_lossy(&deps.stderr));
        let state =
            xdpipe::sys::private_temp_dir(&format!("xdpipe-vm-test-{name}")).expect("a private state directory");
        Vm(Guest::start(&script, state, Path::new(XDPIPE), true).unwrap_or_else(|e| panic!("{e}")))
    }

    /// Runs a shell job in the guest; panics with its output unless it exits 0.
    pub fn sh(&self, job: &str) -> String {
        let out = self.0.exec(job, 300).expect("guest.sh exec");
        let (o, e) =
            (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        assert!(out.status.success(), "guest job failed ({}):\n{job}\n--- stdout\n{o}\n--- stderr\n{e}", out.status);
        o
    }

    /// `xdpipe run -i RX --json RUN_ARGS`, then `xdpipe gen` on `tx` (`gen_args`), then
    /// the receiver is stopped (SIGINT). Returns (run summary, gen summary).
    pub fn run_gen(&self, rx: &str, tx: &str, run_args: &str, gen_args: &str) -> (Value, Value) {
        let (r, g, _) = self.run_gen_with(rx, tx, run_args, gen_args, "");
        (r, g)
    }

    /// [`Vm::run_gen`] that runs the shell snippet `during` once the receiver is ready
    /// (before gen starts), and returns its output too.
    pub fn run_gen_with(
        &self,
        rx: &str,
        tx: &str,
        run_args: &str,
        gen_args: &str,
        during: &str,
    ) -> (Value, Value, String) {
        let (src, dst) = addrs(tx);
        let job = format!(
            "mac=$(cat /sys/class/net/{rx}/address)
xdpipe run -i {rx} --json {run_args} > /tmp/run.json 2> /tmp/run.err &
rp=$!
i=0; until grep -q 'ready:' /tmp/run.err; do i=$((i+1)); [ $i -gt 600 ] && {{ cat /tmp/run.err >&2; exit 3; }}; kill -0 $rp 2>/dev/null || {{ cat /tmp/run.err >&2; exit 4; }}; usleep 100000; done
echo DURING-START
{during}
echo DURING-END
xdpipe gen -i {tx} --json --src-ip {src} --dst-ip {dst} --dst-mac $mac {gen_args} > /tmp/gen.json 2> /tmp/gen.err || {{ cat /tmp/gen.err >&2; exit 5; }}
sleep 2
kill -INT $rp; wait $rp || {{ cat /tmp/run.err >&2; exit 6; }}
echo \"RUN $(tr -d '\\n' < /tmp/run.json)\"
echo \"GEN $(tr -d '\\n' < /tmp/gen.json)\"
ip -j link show dev {rx} | grep -q '\"xdp\"' && {{ echo 'XDP still attached to {rx}' >&2; exit 7; }}
true"
        );
        let out = self.sh(&job);
        let during = out
            .split_once("DURING-START\n")
            .and_then(|(_, rest)| rest.split_once("DURING-END\n"))
            .map_or(String::new(), |(d, _)| d.to_owned());
        (tagged(&out, "RUN "), tagged(&out, "GEN "), during)
    }

    /// Every port's receive ring at the NIC's maximum. Frames come in bursts (fwd's
    /// arrive through the host's taps and leave as they came; l2fwd answers in batches),
    /// and QEMU's igb model drops what finds its receive ring full without counting it
    /// anywhere; under TCG the receiving vCPU can be off for longer than 256 descriptors
    /// last (seen: a fwd sink missing 41 to 339 of 3000 frames its peer's counter had
    /// sent). igb goes to 4096; virtio-net's maximum is its queue size, already in use.
    pub fn deepest_rx_rings(&self) {
        self.sh("for p in igb0 igb1 vio0 vio1; do
  max=$(ethtool -g $p | awk '/^RX:/ { print $2; exit }')
  cur=$(ethtool -g $p | awk '/^RX:/ { n++ } n == 2 { print $2; exit }')
  [ \"$cur\" = \"$max\" ] || ethtool -G $p rx $max || exit 1
done");
        self.wait_up(&["igb0", "igb1", "vio0", "vio1"]);
    }

    /// Waits until each port's operstate is up again (after a reset: ring size, channels,
    /// MTU); panics after 10 s.
    pub fn wait_up(&self, ports: &[&str]) {
        self.sh(&format!(
            "for p in {}; do
  i=0; until [ \"$(cat /sys/class/net/$p/operstate)\" = up ]; do i=$((i+1)); [ $i -gt 100 ] && {{ echo \"$p did not come back up\" >&2; exit 2; }}; usleep 100000; done
done",
            ports.join(" ")
        ));
    }
}

/// The generator port's and the receiver port's addresses on the pair `tx` belongs to.
pub fn addrs(tx: &str) -> (&'static str, &'static str) {
    if tx.starts_with("igb") { ("10.78.0.1", "10.78.0.2") } else { ("10.79.0.1", "10.79.0.2") }
}

/// The JSON after `tag` on a line of a job's output.
pub fn tagged(out: &str, tag: &str) -> Value {
    let line = out.lines().find_map(|l| l.strip_prefix(tag)).unwrap_or_else(|| panic!("no {tag} line in:\n{out}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{tag} is not JSON ({e}): {line}"))
}

/// What `gen --rss-of` planned each of `queues` RX queues to receive: the frames each
/// flow sent, summed by the RX queue its plan gives it.
pub fn rss_planned(g: &Value, queues: usize) -> Vec<u64> {
    let sent = g["sent_per_flow"].as_array().unwrap_or_else(|| panic!("no sent_per_flow in {g}"));
    let to = g["per_queue"].as_array().unwrap_or_else(|| panic!("no per_queue in {g}")).iter().flat_map(|q| {
        q["rss_rx_queues"]
            .as_array()
            .unwrap_or_else(|| panic!("no rss_rx_queues in {q}"))
            .iter()
            .map(|v| v.as_u64().unwrap())
    });
    let mut planned = vec![0; queues];
    let mut flows = 0;
    for (q, n) in to.zip(sent) {
        planned[q as usize] += n.as_u64().unwrap();
        flows += 1;
    }
    assert_eq!(flows, sent.len(), "a planned RX queue for each flow: {g}");
    planned
}

/// rx_packets of each queue of a run summary.
pub fn per_queue(r: &Value) -> Vec<u64> {
    r["queues"].as_array().map(|q| q.iter().map(|x| u(x, "rx_packets")).collect()).unwrap_or_default()
}
