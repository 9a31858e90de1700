//! The protocol without ssh: the client against a scripted agent, the agent against a
//! scripted client, over Unix socket pairs.
use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    sync::{Arc, Mutex, atomic::AtomicBool},
};

use super::*;

fn prep() -> Prepare {
    Prepare {
        iface: "eth9".into(),
        size: FrameSpec::Bytes(64),
        flows: 4,
        engine: GenEngine::Xsk,
        dst_mac: [2, 0, 0, 0, 0, 1],
        src_ip: Ipv4Addr::new(198, 18, 0, 1),
        dst_ip: Ipv4Addr::new(198, 19, 0, 1),
    }
}

/// A client session whose agent is `script`: it reads each request line and answers
/// with the lines the script returns for it (None: close the connection).
fn client_with(
    script: impl FnMut(&str) -> Option<Vec<String>> + Send + 'static,
) -> (Session<UnixStream>, thread::JoinHandle<Vec<String>>) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut script = script;
    let h = thread::spawn(move || {
        let mut seen = Vec::new();
        let mut r = BufReader::new(theirs.try_clone().unwrap());
        let mut w = theirs;
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            seen.push(line.trim_end().to_owned());
            match script(line.trim_end()) {
                Some(lines) => {
                    let mut close = false;
                    for l in lines {
                        if l == CLOSE_AFTER {
                            close = true;
                            continue;
                        }
                        // After CLOSE_AFTER: written without its newline, then closed.
                        let l = if close { l } else { format!("{l}\n") };
                        if w.write_all(l.as_bytes()).is_err() {
                            return seen;
                        }
                    }
                    if close {
                        return seen;
                    }
                }
                None => return seen,
            }
            line.clear();
        }
        seen
    });
    (Session::new(ours.try_clone().unwrap(), ours).unwrap(), h)
}

/// In a script's lines: the rest is written without a newline and the connection closed.
const CLOSE_AFTER: &str = "<close after>";

fn hello_reply() -> String {
    serde_json::to_string(&Reply::Hello { version: VERSION.into(), protocol: PROTOCOL }).unwrap()
}

#[test]
fn a_whole_session_hello_prepare_trial_bye() {
    let (mut s, h) = client_with(|l| {
        let r: Request = serde_json::from_str(l).unwrap();
        Some(match r {
            Request::Hello { .. } => vec![hello_reply()],
            Request::Prepare(_) => vec![r#"{"type":"prepared"}"#.into()],
            Request::Trial { .. } => vec![
                r#"{"type":"started"}"#.into(),
                r#"{"type":"finished","sent":100,"completed":100,"tx_pps":50.0,"duration_s":2.0}"#.into(),
            ],
            Request::Bye => vec![r#"{"type":"bye"}"#.into(), CLOSE_AFTER.into()],
            Request::Stop => vec![],
        })
    });
    s.hello().unwrap();
    s.prepare(&prep()).unwrap();
    let f = s.trial(TrialRate::Pps(50.0), 2.0, &AtomicBool::new(false)).unwrap();
    assert_eq!(f, Finished { sent: 100, completed: 100, tx_pps: 50.0, duration_s: 2.0 });
    s.bye();
    drop(s);
    let seen = h.join().unwrap();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen[2].contains(r#""rate":{"pps":50.0}"#), "{}", seen[2]);
}

#[test]
fn an_agent_of_another_version_is_named_with_both_versions() {
    let (mut s, _h) = client_with(|_| Some(vec![r#"{"type":"hello","version":"0.0.1-old","protocol":99}"#.into()]));
    let e = s.hello().unwrap_err().to_string();
    assert!(e.contains("0.0.1-old") && e.contains("protocol 99") && e.contains(VERSION), "{e}");
}

#[test]
fn a_malformed_reply_is_refused() {
    for junk in [
        "not json",
        r#"{"type":"hello"}"#,
        r#"{"type":"launch_missiles"}"#,
        r#"{"type":"hello","version":1,"protocol":1}"#,
    ] {
        let j = junk.to_owned();
        let (mut s, _h) = client_with(move |_| Some(vec![j.clone()]));
        let e = s.hello().unwrap_err();
        assert!(matches!(e, SessionError::Malformed { .. }), "{junk}: {e}");
        assert!(e.to_string().contains("malformed reply at the handshake"), "{e}");
    }
}

#[test]
fn an_out_of_order_reply_is_refused() {
    // Finished before Started.
    let (mut s, _h) = client_with(|l| {
        Some(match serde_json::from_str::<Request>(l).unwrap() {
            Request::Hello { .. } => vec![hello_reply()],
            Request::Prepare(_) => vec![r#"{"type":"prepared"}"#.into()],
            _ => vec![r#"{"type":"finished","sent":1,"completed":1,"tx_pps":1.0,"duration_s":1.0}"#.into()],
        })
    });
    s.hello().unwrap();
    s.prepare(&prep()).unwrap();
    let e = s.trial(TrialRate::Max, 1.0, &AtomicBool::new(false)).unwrap_err().to_string();
    assert!(e.contains("out of order: expected started, got finished"), "{e}");
}

#[test]
fn a_connection_lost_mid_trial_ends_the_trial() {
    let (mut s, _h) = client_with(|l| match serde_json::from_str::<Request>(l).unwrap() {
        Request::Hello { .. } => Some(vec![hello_reply()]),
        Request::Prepare(_) => Some(vec![r#"{"type":"prepared"}"#.into()]),
        // Started, then the connection goes.
        Request::Trial { .. } => {
            Some(vec![r#"{"type":"started"}"#.into(), CLOSE_AFTER.into(), r#"{"type":"fini"#.into()])
        }
        _ => None,
    });
    s.hello().unwrap();
    s.prepare(&prep()).unwrap();
    // Started, then the connection closes in the middle of the next line.
    let e = s.trial(TrialRate::Max, 1.0, &AtomicBool::new(false)).unwrap_err();
    assert!(matches!(e, SessionError::Lost { .. }), "{e}");
    let (mut s, _h) = client_with(|l| match serde_json::from_str::<Request>(l).unwrap() {
        Request::Hello { .. } => Some(vec![hello_reply()]),
        Request::Prepare(_) => Some(vec![r#"{"type":"prepared"}"#.into()]),
        Request::Trial { .. } => Some(vec![r#"{"type":"started"}"#.into()]),
        _ => None,
    });
    s.hello().unwrap();
    s.prepare(&prep()).unwrap();
    // Stop set: the client sends Stop, the script closes the connection on it.
    let stop = AtomicBool::new(true);
    let e = s.trial(TrialRate::Max, 1.0, &stop).unwrap_err();
    assert!(matches!(e, SessionError::Lost { .. }), "{e}");
    assert_eq!(e.to_string(), "the connection to the agent was lost during a trial");
}

#[test]
fn an_oversized_line_is_refused_without_being_kept() {
    let (mut s, _h) = client_with(|_| Some(vec!["x".repeat(MAX_LINE + 10)]));
    let e = s.hello().unwrap_err();
    assert!(e.to_string().contains(&format!("longer than {MAX_LINE}")), "{e}");
    // Exactly MAX_LINE is accepted by the reader.
    let line = format!("{}\n", "y".repeat(MAX_LINE));
    let mut r = std::io::Cursor::new(line.into_bytes());
    assert_eq!(read_line_bounded(&mut r, MAX_LINE).unwrap().unwrap().len(), MAX_LINE);
    assert_eq!(read_line_bounded(&mut r, MAX_LINE).unwrap(), None);
    let mut r = std::io::Cursor::new(b"half".to_vec());
    assert_eq!(read_line_bounded(&mut r, MAX_LINE), Err(LineError::Truncated));
}

/// A generator that records its calls and sends until stopped (or `secs`).
#[derive(Default)]
struct Fake {
    calls: Arc<Mutex<Vec<String>>>,
}

impl Generator for Fake {
    fn prepare(&mut self, p: &Prepare) -> Result<(), String> {
        self.calls.lock().unwrap().push(format!("prepare {}", p.iface));
        if p.flows == 0 { Err("--flows 0: give 1 to 65535 flows".into()) } else { Ok(()) }
    }

    fn trial(&mut self, _p: &Prepare, rate: TrialRate, secs: f64, stop: Arc<AtomicBool>) -> Result<Finished, String> {
        let t0 = Instant::now();
        while t0.elapsed().as_secs_f64() < secs && !stop.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(5));
        }
        let stopped = stop.load(Ordering::Relaxed);
        self.calls.lock().unwrap().push(format!("trial {rate:?} stopped={stopped}"));
        Ok(Finished { sent: 7, completed: 7, tx_pps: 7.0, duration_s: t0.elapsed().as_secs_f64() })
    }
}

/// Runs the agent on one end of a pair; returns the other end and the agent's result.
type Agent = (UnixStream, BufReader<UnixStream>, thread::JoinHandle<Result<(), AgentError>>, Arc<Mutex<Vec<String>>>);

fn agent() -> Agent {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let fake = Fake::default();
    let calls = fake.calls.clone();
    let h = thread::spawn(move || {
        let mut g = fake;
        serve(theirs.try_clone().unwrap(), theirs, &mut g, &AtomicBool::new(false))
    });
    let r = BufReader::new(ours.try_clone().unwrap());
    (ours, r, h, calls)
}

fn say(w: &mut UnixStream, r: &mut BufReader<UnixStream>, req: &str) -> String {
    w.write_all(format!("{req}\n").as_bytes()).unwrap();
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    l.trim_end().to_owned()
}

const HELLO: &str = concat!(r#"{"type":"hello","version":""#, env!("CARGO_PKG_VERSION"), r#"","protocol":1}"#);

fn prepare_line(flows: u16) -> String {
    serde_json::to_string(&Request::Prepare(Prepare { flows, ..prep() })).unwrap()
}

#[test]
fn the_agent_refuses_requests_out_of_order() {
    // A trial before hello.
    let (mut w, mut r, h, calls) = agent();
    let l = say(&mut w, &mut r, r#"{"type":"trial","rate":"max","secs":1.0}"#);
    assert!(l.contains("the first request must be hello"), "{l}");
    assert!(h.join().unwrap().is_err());
    // A trial before prepare.
    let (mut w, mut r, h, _) = agent();
    assert!(say(&mut w, &mut r, HELLO).contains(r#""type":"hello""#));
    let l = say(&mut w, &mut r, r#"{"type":"trial","rate":"max","secs":1.0}"#);
    assert!(l.contains("a trial before the generator was prepared"), "{l}");
    assert!(h.join().unwrap().is_err());
    // Stop outside a trial; a malformed request; a command line is not a request.
    for bad in [r#"{"type":"stop"}"#, r#"{"type":"exec","argv":["rm","-rf","/"]}"#, "sh -c reboot"] {
        let (mut w, mut r, h, _) = agent();
        say(&mut w, &mut r, HELLO);
        let l = say(&mut w, &mut r, bad);
        assert!(l.contains(r#""type":"error""#), "{bad}: {l}");
        assert!(h.join().unwrap().is_err());
    }
    assert!(calls.lock().unwrap().is_empty());
}

#[test]
fn the_agent_validates_settings_and_runs_trials() {
    let (mut w, mut r, h, calls) = agent();
    say(&mut w, &mut r, HELLO);
    let l = say(&mut w, &mut r, &prepare_line(0));
    assert!(l.contains("--flows 0"), "{l}");
    // A refused prepare leaves nothing prepared.
    let l = say(&mut w, &mut r, r#"{"type":"trial","rate":"max","secs":1.0}"#);
    assert!(l.contains("before the generator was prepared"), "{l}");
    assert!(h.join().unwrap().is_err());

    let (mut w, mut r, h, calls2) = agent();
    say(&mut w, &mut r, HELLO);
    assert_eq!(say(&mut w, &mut r, &prepare_line(4)), r#"{"type":"prepared"}"#);
    assert_eq!(say(&mut w, &mut r, r#"{"type":"trial","rate":{"pps":1000.0},"secs":0.05}"#), r#"{"type":"started"}"#);
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    assert!(l.contains(r#""type":"finished","sent":7"#), "{l}");
    // Stop ends a long trial early.
    assert_eq!(say(&mut w, &mut r, r#"{"type":"trial","rate":"max","secs":100.0}"#), r#"{"type":"started"}"#);
    let t0 = Instant::now();
    let l = say(&mut w, &mut r, r#"{"type":"stop"}"#);
    assert!(l.contains("finished") && t0.elapsed() < Duration::from_secs(5), "{l}");
    assert_eq!(say(&mut w, &mut r, r#"{"type":"bye"}"#), r#"{"type":"bye"}"#);
    h.join().unwrap().unwrap();
    let c = calls2.lock().unwrap().clone();
    assert_eq!(c, ["prepare eth9", "trial Pps(1000.0) stopped=false", "trial Max stopped=true"]);
    assert_eq!(calls.lock().unwrap().len(), 1);
}

#[test]
fn the_agent_stops_its_trial_when_its_input_closes() {
    let (mut w, mut r, h, calls) = agent();
    say(&mut w, &mut r, HELLO);
    say(&mut w, &mut r, &prepare_line(1));
    assert_eq!(say(&mut w, &mut r, r#"{"type":"trial","rate":"max","secs":100.0}"#), r#"{"type":"started"}"#);
    let t0 = Instant::now();
    w.shutdown(std::net::Shutdown::Write).unwrap();
    h.join().unwrap().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(calls.lock().unwrap().last().unwrap(), "trial Max stopped=true");
}

#[test]
fn the_agent_names_both_versions_on_a_mismatch() {
    let (mut w, mut r, h, _) = agent();
    let l = say(&mut w, &mut r, r#"{"type":"hello","version":"9.9.9","protocol":1}"#);
    assert!(l.contains(VERSION), "the agent answers with its own version: {l}");
    let e = h.join().unwrap().unwrap_err().to_string();
    assert!(e.contains("9.9.9") && e.contains(VERSION), "{e}");
}
