//! `xdpipe compare RUN_A RUN_B`: two stored runs side by side, B against A, each ratio with
//! its interval and verdict (the logic is `xdpipe_bench::compare`; this prints it).
use std::{path::PathBuf, process::ExitCode};

use clap::Args;
use xdpipe::stats::fmt_pps;
use xdpipe_bench::{
    compare::{Comparison, Row, compare, load_run},
    stats::describe_ratio,
};

use crate::cli::{CliError, refuse};

#[derive(Args, Clone, Debug)]
pub struct CompareArgs {
    /// The baseline run directory (bench/runs/...).
    pub run_a: PathBuf,
    /// The run compared against it: ratios are B / A.
    pub run_b: PathBuf,
    /// Confidence of the bootstrap intervals.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

impl CompareArgs {
    /// Checks the confidence.
    pub fn validate(&self) -> Result<&Self, CliError> {
        if !(self.confidence > 0.5 && self.confidence < 1.0) {
            refuse!("--confidence {}: give a fraction between 0.5 and 1, e.g. 0.95 (95% intervals)", self.confidence);
        }
        Ok(self)
    }
}

fn value(r: &Row, v: f64) -> String {
    match r.unit.as_str() {
        "pps" => fmt_pps(v),
        u => format!("{v:.0} {u}"),
    }
}

fn line(r: &Row) -> String {
    let verdict = match (r.verdict, &r.note) {
        (Some(v), _) => v.to_string(),
        (None, Some(n)) => n.clone(),
        (None, None) => "no interval".into(),
    };
    format!(
        "  {:<22} {} -> {}: ratio {}: {verdict}",
        r.metric,
        value(r, r.a),
        value(r, r.b),
        describe_ratio(r.interval.as_ref(), r.ratio)
    )
}

/// The comparison as text.
pub fn render(c: &Comparison, a: &str, b: &str) -> String {
    let mut s = format!("compare: B / A, {}% intervals\n  A: {a}\n  B: {b}\n", c.confidence * 100.0);
    for n in &c.notes {
        s += &format!("note: {n}\n");
    }
    for sc in &c.scenarios {
        s += &format!("\n{}\n", sc.label);
        for r in &sc.rows {
            s += &line(r);
            s += "\n";
        }
    }
    for an in &c.anchors {
        s += &format!("\nanchor {} [{}]\n", an.name, an.xdp_mode);
        for r in &an.rows {
            s += &line(r);
            s += "\n";
        }
    }
    for (which, l) in [("A", &c.only_a), ("B", &c.only_b)] {
        if !l.is_empty() {
            s += &format!("\nonly in {which} (not compared):\n");
            for x in l.iter() {
                s += &format!("  {x}\n");
            }
        }
    }
    s
}

pub fn cmd_compare(a: &CompareArgs) -> anyhow::Result<ExitCode> {
    let a = a.validate()?;
    let ra = load_run("RUN_A", &a.run_a)?;
    let rb = load_run("RUN_B", &a.run_b)?;
    let c = compare(&ra, &rb, a.confidence)?;
    if a.json {
        crate::cli::print_json(&c)?;
    } else {
        print!("{}", render(&c, &a.run_a.display().to_string(), &a.run_b.display().to_string()));
    }
    Ok(ExitCode::SUCCESS)
}
