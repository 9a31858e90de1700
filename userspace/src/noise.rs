//! The machine's noise while a bench trial runs: a thread that sleeps 1 ms at a time and
//! counts the wakeups more than 1 ms late (stalls: the scheduler or the hypervisor kept it
//! off a CPU), plus the steal and iowait time `/proc/stat` counts over the trial. It never
//! spins: the trial's receiver and generator use both cores of a small machine, and a
//! spinning probe would be the noise it measures.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// The sleep the probe asks for each time.
pub const TICK: Duration = Duration::from_millis(1);

/// A wakeup later than this past its tick counts as a stall.
pub const STALL: Duration = Duration::from_millis(1);

/// The aggregate `cpu` line of `/proc/stat`, in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// user + nice + system + idle + iowait + irq + softirq + steal (guest time is
    /// already in user and nice).
    pub total: u64,
    /// Ticks idle waiting for I/O.
    pub iowait: u64,
    /// Ticks the hypervisor ran something else while this guest wanted the CPU.
    pub steal: u64,
}

/// Parses the aggregate `cpu` line of `/proc/stat` text. Kernels before 2.6.11 have no
/// steal column: it counts as 0.
pub fn parse_proc_stat(text: &str) -> Result<CpuTimes, String> {
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some("cpu"))
        .ok_or("/proc/stat: no aggregate \"cpu\" line")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse::<u64>().map_err(|_| format!("/proc/stat: {f:?} in the cpu line is not a tick count")))
        .collect::<Result<_, _>>()?;
    if fields.len() < 5 {
        return Err(format!(
            "/proc/stat: the cpu line has {} fields, expected at least 5 (user .. iowait)",
            fields.len()
        ));
    }
    let at = |i: usize| fields.get(i).copied().unwrap_or(0);
    Ok(CpuTimes { total: (0..8).map(at).sum(), iowait: at(4), steal: at(7) })
}

/// Reads and parses `/proc/stat`.
pub fn read_cpu_times() -> Result<CpuTimes, String> {
    let text = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    parse_proc_stat(&text)
}

/// Steal and iowait as fractions of the CPU time between two readings (0 when no time passed
/// or a counter went backwards).
pub fn fractions(before: CpuTimes, after: CpuTimes) -> (f64, f64) {
    let total = after.total.saturating_sub(before.total);
    if total == 0 {
        return (0.0, 0.0);
    }
    let f = |a: u64, b: u64| a.saturating_sub(b) as f64 / total as f64;
    (f(after.steal, before.steal), f(after.iowait, before.iowait))
}

/// What the probe saw between its start and its finish.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NoiseReading {
    /// Ticks that woke more than [`STALL`] late.
    pub stalls: u64,
    /// The latest wakeup past its tick.
    pub longest_stall: Duration,
    /// Ticks slept.
    pub ticks: u64,
    /// Steal time as a fraction of the CPU time over the probe (0 when `/proc/stat` could
    /// not be read).
    pub steal: f64,
    /// Iowait as a fraction of the CPU time over the probe.
    pub iowait: f64,
}

/// The tally of the sleeper's wakeups.
#[derive(Default)]
struct Wakeups {
    ticks: u64,
    stalls: u64,
    longest: Duration,
}

impl Wakeups {
    /// One wakeup, `late` past its tick.
    fn add(&mut self, late: Duration) {
        self.ticks += 1;
        self.stalls += u64::from(late > STALL);
        self.longest = self.longest.max(late);
    }
}

/// A running noise probe: [`NoiseProbe::start`] before the trial, [`NoiseProbe::finish`]
/// after it.
pub struct NoiseProbe {
    stop: Arc<AtomicBool>,
    sleeper: JoinHandle<(u64, u64, Duration)>,
    before: Option<CpuTimes>,
}

impl NoiseProbe {
    /// Starts the sleeping thread and takes the first `/proc/stat` reading.
    pub fn start() -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let sleeper = std::thread::Builder::new().name("noise-probe".into()).spawn(move || {
            let mut w = Wakeups::default();
            while !flag.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                std::thread::sleep(TICK);
                w.add(t0.elapsed().saturating_sub(TICK));
            }
            (w.ticks, w.stalls, w.longest)
        })?;
        Ok(Self { stop, sleeper, before: read_cpu_times().ok() })
    }

    /// Stops the thread and returns what it saw.
    pub fn finish(self) -> NoiseReading {
        let after = read_cpu_times().ok();
        self.stop.store(true, Ordering::Relaxed);
        let (ticks, stalls, longest_stall) = self.sleeper.join().unwrap_or_default();
        let (steal, iowait) = match (self.before, after) {
            (Some(b), Some(a)) => fractions(b, a),
            _ => (0.0, 0.0),
        };
        NoiseReading { stalls, longest_stall, ticks, steal, iowait }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  4705 150 1120 16250 520 0 30 80 0 0\n\
                        cpu0 2355 75 560 8125 260 0 15 40 0 0\n\
                        intr 12345 0 0\nctxt 99\n";

    #[test]
    fn the_aggregate_cpu_line_is_parsed() {
        let t = parse_proc_stat(STAT).unwrap();
        assert_eq!(t, CpuTimes { total: 4705 + 150 + 1120 + 16250 + 520 + 30 + 80, iowait: 520, steal: 80 });
        // An old kernel without steal (and guest) columns.
        let old = parse_proc_stat("cpu 10 0 10 70 10 0 0\n").unwrap();
        assert_eq!((old.total, old.steal, old.iowait), (100, 0, 10));
        assert!(parse_proc_stat("cpu0 1 2 3 4 5\n").unwrap_err().contains("no aggregate"));
        assert!(parse_proc_stat("cpu 1 2 x 4 5\n").unwrap_err().contains("\"x\""));
        assert!(parse_proc_stat("cpu 1 2 3\n").unwrap_err().contains("3 fields"));
    }

    #[test]
    fn steal_and_iowait_are_fractions_of_the_time_between_readings() {
        let b = CpuTimes { total: 1000, iowait: 10, steal: 5 };
        let a = CpuTimes { total: 2000, iowait: 60, steal: 35 };
        assert_eq!(fractions(b, a), (0.03, 0.05));
        assert_eq!(fractions(a, b), (0.0, 0.0), "backwards counters say nothing");
        assert_eq!(fractions(a, a), (0.0, 0.0));
    }

    #[test]
    fn the_probe_sleeps_in_ticks_and_reports_what_it_saw() {
        let p = NoiseProbe::start().unwrap();
        std::thread::sleep(Duration::from_millis(120));
        let r = p.finish();
        // About 100 ticks of 1 ms: fewer when the machine is busy (9 seen with a TCG guest
        // and two builds on the 2 cores), never many more.
        assert!(r.ticks >= 1 && r.ticks <= 125, "{r:?}");
        assert!(r.stalls <= r.ticks);
        assert!((0.0..=1.0).contains(&r.steal) && (0.0..=1.0).contains(&r.iowait), "{r:?}");
        assert!(read_cpu_times().unwrap().total > 0);
    }

    #[test]
    fn only_wakeups_more_than_a_millisecond_late_are_stalls() {
        let mut w = Wakeups::default();
        for us in [60, 900, 1000, 1001, 7000, 80] {
            w.add(Duration::from_micros(us));
        }
        assert_eq!((w.ticks, w.stalls, w.longest), (6, 2, Duration::from_micros(7000)));
    }
}
