//! `xdpipe report`: compares stored runs in a markdown summary and one HTML page with
//! SVG charts (no scripts, no external assets): throughput against frame size (with the
//! line-rate curve for physical links), zero-loss rate, scaling with queue count,
//! latency percentiles, and the deltas attributed to XDP mode, zero-copy (DMA), queue
//! count (RSS), threaded NAPI and target (physical against virtual).
use std::fmt::Write as _;

use crate::{
    Scenario,
    axes::{Bind, Offloads, Target, Wait, XdpMode},
    stats::{Better, DEFAULT_CONFIDENCE, GoalVerdict, Interval, Spread, Verdict, describe_ratio, ratio_interval},
    store::{Anchor, RunSummary, ScenarioSummary},
};

/// A verdict as a table cell: bold when the interval says something, "no interval" when
/// none could be drawn.
fn verdict_cell(ci: Option<&Interval>, v: Verdict) -> String {
    match (ci, v) {
        (None, _) => "no interval".to_owned(),
        (Some(_), Verdict::Indistinguishable) => v.to_string(),
        (Some(_), v) => format!("**{v}**"),
    }
}

/// An anchor's ratio interval: the stored one, else one drawn from the stored trial values.
fn anchor_ci(a: &Anchor) -> Option<Interval> {
    a.ratio_ci.or_else(|| ratio_interval(&a.ours.values, &a.theirs.values, DEFAULT_CONFIDENCE))
}

/// A run and the name it is shown under.
pub struct NamedRun {
    pub name: String,
    pub summary: RunSummary,
}

const COLORS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn mpps(p: f64) -> String {
    format!("{:.3}", p / 1e6)
}

/// Sizes in the order they are charted: numeric ascending, then imix.
fn size_order(sizes: &mut Vec<String>) {
    sizes.sort_by(|a, b| match (a.parse::<u32>(), b.parse::<u32>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    });
    sizes.dedup();
}

struct Series {
    name: String,
    /// Per x position: (value, low, high).
    points: Vec<Option<(f64, f64, f64)>>,
    dashed: bool,
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

/// The `<svg>` element and the chart's title.
fn svg_open(w: f64, h: f64, title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
        w / 2.0,
        esc(title)
    )
}

/// Horizontal grid lines with their values, 0 to `ymax` in five steps.
fn y_grid(s: &mut String, l: f64, t: f64, pw: f64, ph: f64, ymax: f64) {
    for k in 0..=5 {
        let v = ymax * k as f64 / 5.0;
        let y = t + ph - ph * v / ymax;
        let _ = writeln!(
            s,
            "<line x1=\"{l}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            l + pw,
            l - 6.0,
            y + 4.0,
            trim_num(v)
        );
    }
}

/// A line chart over categorical x positions, with min-max whiskers.
fn line_chart(title: &str, x_title: &str, y_title: &str, xs: &[String], series: &[Series]) -> String {
    // One legend line per series below the plot: run and scenario labels are long.
    let (w, l, r, t, ph) = (760.0, 70.0, 20.0, 40.0, 210.0);
    let h = t + ph + 64.0 + 16.0 * series.len() as f64;
    let pw = w - l - r;
    let ymax =
        nice_max(series.iter().flat_map(|s| s.points.iter().flatten().map(|p| p.2.max(p.0))).fold(0.0, f64::max));
    let xpos = |i: usize| l + if xs.len() <= 1 { pw / 2.0 } else { pw * i as f64 / (xs.len() - 1) as f64 };
    let ypos = |v: f64| t + ph - ph * (v / ymax);
    let mut s = svg_open(w, h, title);
    y_grid(&mut s, l, t, pw, ph, ymax);
    for (i, x) in xs.iter().enumerate() {
        let _ =
            writeln!(s, "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>", xpos(i), t + ph + 18.0, esc(x));
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        l + pw / 2.0,
        t + ph + 36.0,
        esc(x_title)
    );
    let _ = writeln!(
        s,
        "<text transform=\"translate(16 {}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        t + ph / 2.0,
        esc(y_title)
    );
    let _ = writeln!(s, "<rect x=\"{l}\" y=\"{t}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#888\"/>");
    for (si, se) in series.iter().enumerate() {
        let c = COLORS[si % COLORS.len()];
        let pts: Vec<String> = se
            .points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.map(|p| format!("{:.1},{:.1}", xpos(i), ypos(p.0))))
            .collect();
        let dash = if se.dashed { " stroke-dasharray=\"6 4\"" } else { "" };
        if pts.len() > 1 {
            let _ = writeln!(
                s,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2\"{dash}/>",
                pts.join(" ")
            );
        }
        for (i, p) in se.points.iter().enumerate() {
            if let Some((v, lo, hi)) = p {
                let x = xpos(i);
                if hi > lo {
                    let _ = writeln!(
                        s,
                        "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{c}\"/>",
                        ypos(*lo),
                        ypos(*hi)
                    );
                }
                if !se.dashed {
                    let _ = writeln!(
                        s,
                        "<circle cx=\"{x:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{c}\"><title>{}: {}</title></circle>",
                        ypos(*v),
                        esc(&se.name),
                        trim_num(*v)
                    );
                }
            }
        }
        let ly = t + ph + 58.0 + 16.0 * si as f64;
        let lx = l;
        let _ = writeln!(
            s,
            "<line x1=\"{lx}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"{c}\" stroke-width=\"2\"{dash}/><text x=\"{}\" y=\"{ly:.1}\">{}</text>",
            ly - 4.0,
            lx + 24.0,
            ly - 4.0,
            lx + 30.0,
            esc(&se.name)
        );
    }
    s += "</svg>\n";
    s
}

/// A grouped bar chart: one group per label, one bar per percentile.
fn bar_chart(title: &str, y_title: &str, groups: &[(String, Vec<f64>)], bar_names: &[&str]) -> String {
    let (w, l, r, t) = (760.0, 70.0, 20.0, 40.0);
    let h = 300.0 + 16.0 * groups.len() as f64;
    let b = 60.0 + 16.0 * groups.len() as f64;
    let pw = w - l - r;
    let ph = h - t - b;
    let ymax = nice_max(groups.iter().flat_map(|g| g.1.iter().copied()).fold(0.0, f64::max));
    let gw = pw / groups.len().max(1) as f64;
    let bw = gw * 0.8 / bar_names.len() as f64;
    let mut s = svg_open(w, h, title);
    y_grid(&mut s, l, t, pw, ph, ymax);
    let _ = writeln!(
        s,
        "<text transform=\"translate(16 {}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        t + ph / 2.0,
        esc(y_title)
    );
    for (gi, (name, vals)) in groups.iter().enumerate() {
        let gx = l + gw * gi as f64 + gw * 0.1;
        for (bi, v) in vals.iter().enumerate() {
            let bh = ph * v / ymax;
            let _ = writeln!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"><title>{} {}: {}</title></rect>",
                gx + bw * bi as f64,
                t + ph - bh,
                bw * 0.95,
                COLORS[bi % COLORS.len()],
                esc(name),
                bar_names[bi],
                trim_num(*v)
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            l + gw * gi as f64 + gw / 2.0,
            t + ph + 16.0,
            gi + 1
        );
        let _ = writeln!(
            s,
            "<text x=\"{l}\" y=\"{:.1}\">{}: {}</text>",
            t + ph + 40.0 + 16.0 * gi as f64,
            gi + 1,
            esc(name)
        );
    }
    for (bi, n) in bar_names.iter().enumerate() {
        let x = l + pw - 80.0 * (bar_names.len() - bi) as f64;
        let _ = writeln!(
            s,
            "<rect x=\"{x}\" y=\"28\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"37\">{n}</text>",
            COLORS[bi % COLORS.len()],
            x + 14.0
        );
    }
    s += "</svg>\n";
    s
}

fn trim_num(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Every scenario of every run, with the run's name.
fn all(runs: &[NamedRun]) -> impl Iterator<Item = (&NamedRun, &ScenarioSummary)> {
    runs.iter().flat_map(|r| r.summary.scenarios.iter().map(move |s| (r, s)))
}

/// Pairs of scenarios that differ only in the field `f` picks (values `a` against `b`),
/// within one run, or across runs when `f` is the target.
fn pairs(
    runs: &[NamedRun],
    key: impl Fn(&Scenario) -> (String, String),
) -> Vec<(&ScenarioSummary, &ScenarioSummary, String, String)> {
    let mut out = Vec::new();
    let items: Vec<_> = all(runs).collect();
    for (i, (_, x)) in items.iter().enumerate() {
        for (_, y) in items.iter().skip(i + 1) {
            let (kx, vx) = key(&x.scenario);
            let (ky, vy) = key(&y.scenario);
            if kx == ky && vx != vy {
                out.push((*x, *y, vx, vy));
            }
        }
    }
    out
}

fn delta_rows(
    runs: &[NamedRun],
    what: &str,
    key: impl Fn(&Scenario) -> (String, String),
    base: &str,
    absent: &str,
) -> (String, Vec<String>) {
    let mut rows = Vec::new();
    for (x, y, vx, vy) in pairs(runs, key) {
        // Orient: (other / base).
        let (b, o, vb, vo) = if vx == base {
            (x, y, vx, vy)
        } else if vy == base {
            (y, x, vy, vx)
        } else {
            (x, y, vx, vy)
        };
        if b.mrr_pps.median > 0.0 {
            let ci = ratio_interval(&o.mrr_pps.values, &b.mrr_pps.values, DEFAULT_CONFIDENCE);
            rows.push(format!(
                "| {what} | {} | {vo} vs {vb} | {} → {} Mpps | {} | {} |",
                esc(&b.label),
                mpps(b.mrr_pps.median),
                mpps(o.mrr_pps.median),
                describe_ratio(ci.as_ref(), o.mrr_pps.median / b.mrr_pps.median),
                verdict_cell(ci.as_ref(), Verdict::of(ci.as_ref(), Better::Higher)),
            ));
        }
    }
    (
        if rows.is_empty() { format!("- **{what}**: not measurable in these runs: {absent}\n") } else { String::new() },
        rows,
    )
}

/// A precision record as a cell: `7 trials, ±2.1% (width reached)`.
fn precision_cell(p: Option<&crate::adaptive::Precision>) -> String {
    let Some(p) = p else { return "–".to_owned() };
    let w = p.width.map_or("no interval".to_owned(), |w| format!("width {:.1}%", 100.0 * w));
    let goal = if p.reached {
        format!("target {:.1}% reached", 100.0 * p.target_width)
    } else {
        format!("target {:.1}% **not reached**: {}", 100.0 * p.target_width, p.stopped)
    };
    format!("{} trials, {w}, {goal}", p.trials)
}

/// Per scenario: how many trials its series took and how narrow they got, and the
/// machine's noise over its trials (stalls of a 1 ms sleeper, steal time, flagged trials).
fn precision_and_noise(runs: &[NamedRun]) -> String {
    let mut md = format!(
        "\n## Precision and machine noise\n\nTrials were added until the interval of the median was narrow enough (or the cap \
         or the time budget stopped them). Noise: a thread sleeping 1 ms at a time during each trial counts the wakeups \
         more than 1 ms late (stalls); steal is CPU time the hypervisor gave elsewhere. A trial is flagged when a stall \
         exceeded {:.0} ms or steal exceeded {:.0}%.\n\n\
         | run | scenario | max-rate trials | latency trials (p99) | stalls | longest stall (ms) | max steal | max iowait | flagged trials |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        crate::noise::STALL_FLAG_US / 1e3,
        crate::noise::STEAL_FLAG * 100.0
    );
    for (r, s) in all(runs) {
        let noise = s.noise.map_or("not probed | – | – | – | –".to_owned(), |n| {
            format!(
                "{} | {:.1} | {:.1}% | {:.1}% | {}{} of {}{}",
                n.stalls,
                n.longest_stall_us / 1e3,
                100.0 * n.max_steal,
                100.0 * n.max_iowait,
                if n.flagged > 0 { "**" } else { "" },
                n.flagged,
                n.probed,
                if n.flagged > 0 { "**" } else { "" },
            )
        });
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {noise} |",
            esc(&r.name),
            esc(&s.label),
            precision_cell(s.mrr_precision.as_ref()),
            precision_cell(s.latency_precision.as_ref()),
        );
    }
    md
}

/// The markdown summary.
pub fn markdown(runs: &[NamedRun]) -> String {
    let mut md = String::from("# xdpipe comparison report\n\n");
    for r in runs {
        let i = &r.summary.run;
        let _ = writeln!(
            md,
            "- **{}**: target `{}` on {}, started {}{}{}; at least {} trial(s) per point. Command: `{}`",
            r.name,
            i.target,
            i.host,
            i.started,
            if i.target.starts_with("vm:") {
                " (**EMULATED** NIC under QEMU: the real driver paths ran, but the rates say nothing about hardware speed)"
            } else if i.virtual_target {
                " (virtual: software path only, not NIC hardware)"
            } else {
                ""
            },
            if i.complete { "" } else { " (**partial run**)" },
            i.trials_per_point,
            i.command
        );
    }
    md += "\n## Results\n\n| run | scenario | max receive rate (Mpps, median [min-max]) | generator at max (Mpps) | zero-loss (Mpps) | latency p50 / p99 / p99.9 (µs) at | worker CPU ns/pkt | sent / received (max trials) | exact count |\n|---|---|---|---|---|---|---|---|---|\n";
    for (r, s) in all(runs) {
        let zl = s
            .zero_loss_pps
            .map_or(if s.scenario.can_pace() { "–" } else { "n/a (xdp-live: max only)" }.to_owned(), |z| {
                format!("{}{}", mpps(z), if s.zero_loss_confirmed { "" } else { " (unconfirmed)" })
            });
        let lat = s.latency.as_ref().map_or("–".to_owned(), |l| {
            format!(
                "{:.1} / {:.1} / {:.1} at {} Mpps",
                l.p50_ns.median / 1e3,
                l.p99_ns.median / 1e3,
                l.p999_ns.median / 1e3,
                mpps(l.offered_pps)
            )
        });
        let cpu = s
            .latency
            .as_ref()
            .filter(|l| l.rx_cpu_ns_per_pkt.n > 0)
            .map_or("–".to_owned(), |l| format!("{:.0}", l.rx_cpu_ns_per_pkt.median));
        let count = s.count.as_ref().map_or("–".to_owned(), |c| {
            let dup = c.duplicates().map_or("duplicates not counted".to_owned(), |d| format!("{d} twice"));
            format!(
                "{} {} sent, {} received, {dup} at {} Mpps",
                if c.exact() { "exact:" } else { "**NOT exact**:" },
                c.sent(),
                c.received(),
                mpps(c.offered_pps)
            )
        });
        let _ = writeln!(
            md,
            "| {} | {} | {} [{}-{}] | {} | {zl} | {lat} | {cpu} | {} / {} | {count} |",
            esc(&r.name),
            esc(&s.label),
            mpps(s.mrr_pps.median),
            mpps(s.mrr_pps.min),
            mpps(s.mrr_pps.max),
            mpps(s.offered_max_pps.median),
            s.sent,
            s.received
        );
    }
    md += &precision_and_noise(runs);
    md += "\n## What changes throughput\n\nRatios of the median max receive rate between scenarios that differ in one thing only, \
           with the bootstrap interval of the ratio; only an interval wholly above or below 1 is a verdict \
           (\"no interval\": fewer than two trials a side, or a run stored before trial values were kept).\n\n";
    let mut notes = String::new();
    let mut rows = Vec::new();
    let mut add = |(n, r): (String, Vec<String>)| {
        notes += &n;
        rows.extend(r);
    };
    let strip = |s: &Scenario, f: fn(&mut Scenario) -> String| {
        let mut c = s.clone();
        let v = f(&mut c);
        (c.label(), v)
    };
    add(delta_rows(
        runs,
        "XDP mode",
        |s| strip(s, |c| std::mem::replace(&mut c.xdp_mode, XdpMode::Skb).to_string()),
        "skb",
        "no scenario pair differs only in XDP mode",
    ));
    add(delta_rows(
        runs,
        "DMA (zero-copy vs copy)",
        |s| strip(s, |c| std::mem::replace(&mut c.bind, Bind::Copy).to_string()),
        "copy",
        "no run bound in zero-copy mode (veth is copy only; zero-copy needs a NIC driver with AF_XDP zero-copy)",
    ));
    add(delta_rows(
        runs,
        "RSS (queues)",
        |s| strip(s, |c| std::mem::replace(&mut c.queues, 0).to_string()),
        "1",
        "every scenario used the same queue count",
    ));
    add(delta_rows(
        runs,
        "threaded NAPI",
        |s| strip(s, |c| std::mem::take(&mut c.threaded_napi).to_string()),
        "false",
        "no run compared threaded NAPI on and off",
    ));
    add(delta_rows(
        runs,
        "wait policy",
        |s| strip(s, |c| std::mem::replace(&mut c.wait, Wait::Busy).to_string()),
        "busy",
        "no run compared busy polling with poll()",
    ));
    add(delta_rows(
        runs,
        "physical vs virtual",
        |s| strip(s, |c| std::mem::replace(&mut c.target, Target::Veth).to_string()),
        "veth",
        "no two runs share a scenario on different targets",
    ));
    add(delta_rows(
        runs,
        "offloads (off vs default)",
        |s| strip(s, |c| std::mem::replace(&mut c.offloads, Offloads::Default).to_string()),
        "default",
        "no run compared offloads off with the default (the offload matrix needs a NIC target: veth's offloads act on skbs, after XDP)",
    ));
    if !rows.is_empty() {
        md += "| what | baseline scenario | compared | Mpps | ratio | verdict |\n|---|---|---|---|---|---|\n";
        for r in rows {
            md += &r;
            md += "\n";
        }
        md += "\n";
    }
    md += &notes;
    let anchors: Vec<_> = runs.iter().flat_map(|r| r.summary.anchors.iter().map(move |a| (r, a))).collect();
    md += "\n## Anchors\n\n";
    if anchors.is_empty() {
        md += "No anchors in these runs: they ran with `--anchors off`, or `xdpipe bench` found none of xdpsock, xdp-bench or xdp-trafficgen on PATH (or `--anchor-dir`), so no ratio to them can be given.\n";
    } else {
        md += "Measured beside xdpipe in the same run, on the same testbed and cores, trials alternating. \
               Ratio = xdpipe / anchor, of the medians, with its bootstrap interval; for CPU per frame lower is better. \
               A goal is met or missed only when the whole interval is on one side of it. \
               xdpipe's side of a CPU pairing reads the generator's stamps (a parse per frame, counted in its CPU) \
               and gives its p99 one-way latency beside the CPU.\n\n\
               | run | XDP mode | comparison | xdpipe | anchor | ratio | verdict | goal |\n|---|---|---|---|---|---|---|---|\n";
        for (r, a) in &anchors {
            let v = |x: &Spread| {
                if a.unit == "pps" {
                    format!("{} Mpps ({}-{})", mpps(x.median), mpps(x.min), mpps(x.max))
                } else {
                    format!("{:.0} {} ({:.0}-{:.0})", x.median, a.unit, x.min, x.max)
                }
            };
            let ci = anchor_ci(a);
            let better = if a.unit == "pps" { Better::Higher } else { Better::Lower };
            let verdict = if a.ratio_ci.is_some() { a.verdict } else { Verdict::of(ci.as_ref(), better) };
            let goal = match (a.goal.as_str(), a.goal_verdict) {
                ("", _) => format!("share: {:.0}%", 100.0 * a.ratio),
                (g, Some(GoalVerdict::Missed)) => format!("{g}: **missed**"),
                (g, Some(gv)) => format!("{g}: {gv}"),
                (g, None) => format!("{g}: undecided (no interval stored)"),
            };
            let ours = match &a.ours_p99_us {
                Some(p) => format!("{}; p99 {:.0} us ({:.0}-{:.0})", v(&a.ours), p.median, p.min, p.max),
                None => v(&a.ours),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.name,
                a.xdp_mode,
                a.name,
                ours,
                v(&a.theirs),
                describe_ratio(ci.as_ref(), a.ratio),
                verdict_cell(ci.as_ref(), verdict),
                goal
            );
        }
        md += "\nCommands (subject  <-  driver):\n\n";
        let mut seen = std::collections::BTreeSet::new();
        for (_, a) in &anchors {
            for c in [&a.ours_command, &a.theirs_command] {
                if seen.insert(c.clone()) {
                    let _ = writeln!(md, "- `{c}`");
                }
            }
        }
    }
    md += &crate::devices::markdown(runs);
    md += &crate::chain::markdown(runs);
    md
}

/// The HTML page: the markdown's tables as HTML plus the charts.
pub fn html(runs: &[NamedRun]) -> String {
    let mut sizes: Vec<String> = all(runs).map(|(_, s)| s.scenario.size.to_string()).collect();
    size_order(&mut sizes);
    let mut series_keys: Vec<(String, String)> = Vec::new();
    for (r, s) in all(runs) {
        let k = (r.name.clone(), s.scenario.series());
        if !series_keys.contains(&k) {
            series_keys.push(k);
        }
    }
    let find = |run: &str, series: &str, size: &str| {
        all(runs)
            .find(|(r, s)| r.name == run && s.scenario.series() == series && s.scenario.size.to_string() == size)
            .map(|(_, s)| s)
    };
    let mut thr = Vec::new();
    let mut zl = Vec::new();
    for (run, key) in &series_keys {
        let name = format!("{run}: {key}");
        thr.push(Series {
            name: name.clone(),
            points: sizes
                .iter()
                .map(|z| find(run, key, z).map(|s| (s.mrr_pps.median / 1e6, s.mrr_pps.min / 1e6, s.mrr_pps.max / 1e6)))
                .collect(),
            dashed: false,
        });
        zl.push(Series {
            name,
            points: sizes
                .iter()
                .map(|z| find(run, key, z).and_then(|s| s.zero_loss_pps).map(|v| (v / 1e6, v / 1e6, v / 1e6)))
                .collect(),
            dashed: false,
        });
    }
    let mut line_rate_note =
        String::from("No physical run in this report: no line-rate curve (veth has no line rate).");
    for r in runs {
        if let Some(bps) = r.summary.run.link_bps {
            line_rate_note = String::new();
            thr.push(Series {
                name: format!("{}: line rate {} Gbit/s", r.name, bps / 1e9),
                points: sizes
                    .iter()
                    .map(|z| {
                        let size = z.parse::<f64>().unwrap_or((7.0 * 64.0 + 4.0 * 570.0 + 1518.0) / 12.0);
                        let p = bps / ((size + 20.0) * 8.0) / 1e6;
                        Some((p, p, p))
                    })
                    .collect(),
                dashed: true,
            });
        }
    }
    let mut charts = String::new();
    charts += &line_chart("Max receive rate against frame size", "frame size (bytes, with FCS)", "Mpps", &sizes, &thr);
    charts += &format!("<p class=\"note\">{}</p>\n", esc(&line_rate_note));
    if zl.iter().any(|se| se.points.iter().any(Option::is_some)) {
        charts += &line_chart(
            "Zero-loss throughput (RFC 2544) against frame size",
            "frame size (bytes, with FCS)",
            "Mpps",
            &sizes,
            &zl,
        );
    } else {
        charts += "<p class=\"note\">No zero-loss chart: these runs have no RFC 2544 search results (run without --no-search, and with the xsk generator: xdp-live sends at full speed only).</p>\n";
    }
    let mut queues: Vec<u32> = all(runs).map(|(_, s)| s.scenario.queues).collect();
    queues.sort_unstable();
    queues.dedup();
    if queues.len() > 1 {
        let xs: Vec<String> = queues.iter().map(|q| q.to_string()).collect();
        let mut keys: Vec<(String, String)> = Vec::new();
        for (r, s) in all(runs) {
            let mut c = s.scenario.clone();
            c.queues = 0;
            let k = (r.name.clone(), c.label());
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        let qs: Vec<Series> = keys
            .iter()
            .map(|(run, key)| Series {
                name: format!("{run}: {key}"),
                points: queues
                    .iter()
                    .map(|q| {
                        all(runs)
                            .find(|(r, s)| {
                                let mut c = s.scenario.clone();
                                c.queues = 0;
                                r.name == *run && c.label() == *key && s.scenario.queues == *q
                            })
                            .map(|(_, s)| (s.mrr_pps.median / 1e6, s.mrr_pps.min / 1e6, s.mrr_pps.max / 1e6))
                    })
                    .collect(),
                dashed: false,
            })
            .collect();
        charts += &line_chart("Scaling with queue count (RSS)", "queues", "Mpps", &xs, &qs);
    } else {
        charts +=
            "<p class=\"note\">Queue scaling: every scenario used one queue count, so there is no scaling chart.</p>\n";
    }
    let groups: Vec<(String, Vec<f64>)> = all(runs)
        .filter_map(|(r, s)| {
            s.latency.as_ref().map(|l| {
                (
                    format!("{}: {} at {} Mpps", r.name, s.label, mpps(l.offered_pps)),
                    vec![l.p50_ns.median / 1e3, l.p90_ns.median / 1e3, l.p99_ns.median / 1e3, l.p999_ns.median / 1e3],
                )
            })
        })
        .collect();
    if groups.is_empty() {
        charts += "<p class=\"note\">No latency trials in these runs.</p>\n";
    } else {
        charts += &bar_chart(
            "One-way latency percentiles (µs, median over trials)",
            "µs",
            &groups,
            &["p50", "p90", "p99", "p99.9"],
        );
    }
    charts += &crate::devices::waterfall_svg(runs);
    charts += &crate::chain::svg(runs);
    let md = markdown(runs);
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>xdpipe comparison report</title>\n\
         <style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}\
         table{{border-collapse:collapse;font-size:13px;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left}}\
         th{{background:#f3f3f3}}svg{{display:block;margin:1.5em 0;max-width:100%;height:auto}}.note{{color:#555;font-style:italic}}</style>\n\
         </head><body>\n{}\n<h2>Charts</h2>\n{charts}</body></html>\n",
        markdown_to_html(&md)
    )
}

/// The small markdown subset `markdown` writes (headings, lists, tables, code, bold).
fn markdown_to_html(md: &str) -> String {
    let inline = |s: &str| {
        let mut out = String::new();
        let mut code = false;
        let mut bold = false;
        let e = esc(s);
        let mut rest = e.as_str();
        while let Some(c) = rest.chars().next() {
            if rest.starts_with("**") {
                out += if bold { "</b>" } else { "<b>" };
                bold = !bold;
                rest = &rest[2..];
                continue;
            }
            if c == '`' {
                out += if code { "</code>" } else { "<code>" };
                code = !code;
            } else {
                out.push(c);
            }
            rest = &rest[c.len_utf8()..];
        }
        out
    };
    let mut html = String::new();
    let mut in_table = false;
    let mut in_list = false;
    for line in md.lines() {
        let is_row = line.starts_with('|');
        if in_table && !is_row {
            html += "</table>\n";
            in_table = false;
        }
        let is_item = line.starts_with("- ") || line.starts_with("  - ");
        if in_list && !is_item {
            html += "</ul>\n";
            in_list = false;
        }
        if let Some(h) = line.strip_prefix("## ") {
            let _ = writeln!(html, "<h2>{}</h2>", inline(h));
        } else if let Some(h) = line.strip_prefix("# ") {
            let _ = writeln!(html, "<h1>{}</h1>", inline(h));
        } else if is_row {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            if cells.iter().all(|c| c.chars().all(|ch| ch == '-')) {
                continue;
            }
            let tag = if in_table { "td" } else { "th" };
            if !in_table {
                html += "<table>\n";
                in_table = true;
            }
            html += "<tr>";
            for c in cells {
                let _ = write!(html, "<{tag}>{}</{tag}>", inline(c));
            }
            html += "</tr>\n";
        } else if is_item {
            if !in_list {
                html += "<ul>\n";
                in_list = true;
            }
            let _ = writeln!(html, "<li>{}</li>", inline(line.trim_start().trim_start_matches("- ")));
        } else if !line.trim().is_empty() {
            let _ = writeln!(html, "<p>{}</p>", inline(line));
        }
    }
    if in_table {
        html += "</table>\n";
    }
    if in_list {
        html += "</ul>\n";
    }
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_sort_numerically_with_imix_last() {
        let mut v: Vec<String> = ["imix", "1518", "64", "128", "64"].iter().map(|s| s.to_string()).collect();
        size_order(&mut v);
        assert_eq!(v, ["64", "128", "1518", "imix"]);
    }

    #[test]
    fn nice_axis_maxima() {
        assert_eq!(nice_max(3.7), 5.0);
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(21.0), 25.0);
    }

    fn scenario(xdp: XdpMode, values: &[f64]) -> ScenarioSummary {
        let mut sc = Scenario::example();
        sc.xdp_mode = xdp;
        ScenarioSummary {
            label: sc.label(),
            scenario: sc,
            mrr_pps: crate::stats::spread(values),
            offered_max_pps: crate::stats::spread(values),
            zero_loss_pps: None,
            zero_loss_confirmed: false,
            latency: None,
            sent: 0,
            received: 0,
            mrr_precision: None,
            latency_precision: None,
            count: None,
            noise: Some(crate::noise::NoiseSummary {
                probed: 3,
                flagged: 1,
                stalls: 4,
                longest_stall_us: 6500.0,
                ..Default::default()
            }),
        }
    }

    fn anchor(ratio_ci: Option<Interval>, goal_verdict: Option<GoalVerdict>) -> Anchor {
        Anchor {
            name: "rxdrop vs xdpsock".into(),
            xdp_mode: "skb".into(),
            unit: "pps".into(),
            ours_command: "a".into(),
            ours_p99_us: None,
            theirs_command: "b".into(),
            ours: Spread { median: 1.15e6, ..Default::default() },
            theirs: Spread { median: 1e6, ..Default::default() },
            ratio: 1.15,
            ratio_ci,
            verdict: Verdict::of(ratio_ci.as_ref(), Better::Higher),
            goal: "at least 1.1".into(),
            goal_verdict,
            precision: None,
        }
    }

    #[test]
    fn a_ratio_whose_interval_holds_the_goal_is_never_reported_met() {
        let ci = Interval { estimate: 1.15, lo: 1.05, hi: 1.25, confidence: 0.95 };
        let gv = GoalVerdict::of(Some(&ci), true, 1.1);
        let run = RunSummary { anchors: vec![anchor(Some(ci), Some(gv))], ..Default::default() };
        let md = markdown(&[NamedRun { name: "r".into(), summary: run }]);
        let row = md.lines().find(|l| l.contains("rxdrop vs xdpsock")).unwrap();
        assert!(row.contains("1.15 [1.05, 1.25] at 95%") && row.contains("**faster**"), "{row}");
        assert!(row.contains("at least 1.1: undecided") && !row.contains(": met"), "{row}");
        // An old run: no interval, no goal verdict; the median ratio alone decides nothing.
        let old = RunSummary { anchors: vec![anchor(None, None)], ..Default::default() };
        let md = markdown(&[NamedRun { name: "r".into(), summary: old }]);
        let row = md.lines().find(|l| l.contains("rxdrop vs xdpsock")).unwrap();
        assert!(row.contains("1.15 (no interval) | no interval | at least 1.1: undecided"), "{row}");
    }

    #[test]
    fn a_cpu_pairing_shows_xdpipes_p99_beside_its_cpu() {
        let cpu = Anchor {
            name: "rxdrop --poll CPU per frame vs xdpsock -p".into(),
            unit: "ns/frame".into(),
            ours: Spread { median: 900.0, min: 880.0, max: 950.0, ..Default::default() },
            ours_p99_us: Some(Spread { median: 85.0, min: 70.0, max: 120.0, ..Default::default() }),
            ..anchor(None, None)
        };
        let md = markdown(&[NamedRun {
            name: "r".into(),
            summary: RunSummary { anchors: vec![cpu], ..Default::default() },
        }]);
        let row = md.lines().find(|l| l.contains("CPU per frame vs xdpsock")).unwrap();
        assert!(row.contains("900 ns/frame (880-950); p99 85 us (70-120)"), "{row}");
    }

    #[test]
    fn scenario_ratios_carry_intervals_and_noise_is_shown() {
        let run = RunSummary {
            scenarios: vec![
                scenario(XdpMode::Skb, &[100.0, 101.0, 99.0, 100.5]),
                scenario(XdpMode::Native, &[200.0, 202.0, 198.0, 201.0]),
            ],
            ..Default::default()
        };
        let md = markdown(&[NamedRun { name: "r".into(), summary: run }]);
        let row = md.lines().find(|l| l.starts_with("| XDP mode |")).unwrap();
        assert!(row.contains("native vs skb") && row.contains("at 95%") && row.contains("**faster**"), "{row}");
        let noise = md.lines().find(|l| l.starts_with("| r |") && l.contains("6.5")).unwrap();
        assert!(noise.contains("| 4 | 6.5 |") && noise.contains("**1 of 3**"), "{noise}");
    }

    #[test]
    fn markdown_subset_to_html() {
        let h = markdown_to_html("# T\n\n| a | b |\n|---|---|\n| `x` | **y** |\n- item <1>\n");
        assert!(h.contains("<h1>T</h1>"));
        assert!(h.contains("<tr><th>a</th><th>b</th></tr>"));
        assert!(h.contains("<td><code>x</code></td><td><b>y</b></td>"));
        assert!(h.contains("<li>item &lt;1&gt;</li>"));
    }
}
