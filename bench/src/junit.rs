//! A gate's verdict as JUnit XML, the format CI systems show as a test report: one
//! `<testsuite>` (inside `<testsuites>`), one `<testcase>` per check, classname the
//! scenario. A failed check has a `<failure>` and a check that could not run an `<error>`,
//! each with the measured value and the threshold; warnings and every check's message are
//! in the testcase's `<system-out>`.
use crate::gate::{GateReport, Outcome};

/// `s` escaped for XML text and attribute values; control characters XML 1.0 does not
/// allow are dropped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// The report as a JUnit XML document; `timestamp` is the ISO 8601 time of the verdict.
pub fn junit(report: &GateReport, timestamp: &str) -> String {
    let tests = report.checks.len();
    let failures = report.count(Outcome::Fail);
    let errors = report.count(Outcome::CouldNotRun);
    let name = escape(&format!("xdpipe gate {} on {}", report.gate, report.run));
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x += &format!("<testsuites name=\"{name}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">\n");
    x += &format!(
        "  <testsuite name=\"{name}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\" \
         time=\"0\" timestamp=\"{}\">\n",
        escape(timestamp)
    );
    for c in &report.checks {
        x +=
            &format!("    <testcase classname=\"{}\" name=\"{}\" time=\"0\">\n", escape(&c.scenario), escape(&c.check));
        let m = escape(&c.message);
        match c.outcome {
            Outcome::Fail => x += &format!("      <failure type=\"threshold\" message=\"{m}\">{m}</failure>\n"),
            Outcome::CouldNotRun => x += &format!("      <error type=\"could-not-run\" message=\"{m}\">{m}</error>\n"),
            Outcome::Pass => {}
            Outcome::Warn => x += &format!("      <system-out>warning: {m}</system-out>\n"),
        }
        if c.outcome != Outcome::Warn {
            x += &format!("      <system-out>{m}</system-out>\n");
        }
        x += "    </testcase>\n";
    }
    x += "  </testsuite>\n</testsuites>\n";
    x
}
