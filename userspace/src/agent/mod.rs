//! The remote generator's protocol: `xdpipe bench --remote-gen ssh://...` on the device
//! under test talks to `xdpipe agent --stdio` on the traffic host over the ssh session's
//! stdin and stdout. One JSON object per line, at most [`MAX_LINE`] bytes, typed
//! [`Request`]s one way and [`Reply`]s the other:
//!
//! ```text
//! client                      agent
//! Hello {version, protocol} ->
//!                           <- Hello {version, protocol}   (both must match)
//! Prepare {iface, size, ...} ->
//!                           <- Prepared | Error
//! Trial {rate, secs}        ->
//!                           <- Started
//! [Stop]                    ->                             (ends the trial early)
//!                           <- Finished {sent, ...} | Error
//! Bye                       ->
//!                           <- Bye
//! ```
//!
//! The agent never runs a command it is sent: a request is data, the generator's
//! settings as typed fields that the agent validates as `xdpipe gen` validates its flags.
//! End of input (the ssh session gone) stops a running trial and ends the agent. The
//! client ([`Session`]) and the agent ([`serve`]) run over any reader and writer, so both
//! are tested without ssh; [`ssh`] starts the agent on another host.
pub mod ssh;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::Ipv4Addr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// The protocol's version: both sides must speak the same one.
pub const PROTOCOL: u32 = 1;

/// This build's xdpipe version; the agent must be the same version as the client.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The longest line either side accepts, in bytes (without the newline).
pub const MAX_LINE: usize = 64 * 1024;

/// What the client asks of the agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The first message: the client's xdpipe and protocol versions.
    Hello {
        /// The client's xdpipe version.
        version: String,
        /// The client's protocol version.
        protocol: u32,
    },
    /// The generator's settings for the trials that follow.
    Prepare(Prepare),
    /// Send at `rate` for `secs` seconds.
    Trial {
        /// The offered rate.
        rate: TrialRate,
        /// How long to send.
        secs: f64,
    },
    /// End the running trial now (its `Finished` still comes).
    Stop,
    /// The end of the session.
    Bye,
}

/// The generator's settings, as typed fields (the agent validates them as `xdpipe gen`
/// validates its flags).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prepare {
    /// The traffic host's interface to send on.
    pub iface: String,
    /// Frame size with FCS.
    pub size: FrameSpec,
    /// Number of flows.
    pub flows: u16,
    /// The TX engine.
    pub engine: GenEngine,
    /// The receiver's MAC (the device under test's port).
    pub dst_mac: [u8; 6],
    /// Source IPv4 address of the frames.
    pub src_ip: Ipv4Addr,
    /// Destination IPv4 address of the frames.
    pub dst_ip: Ipv4Addr,
}

/// A frame size: bytes with FCS, or the imix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameSpec {
    /// One size, bytes with FCS.
    Bytes(u32),
    /// 7:4:1 of 64/570/1518.
    Imix,
}

/// The generator's TX engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenEngine {
    /// The AF_XDP TX ring.
    Xsk,
    /// BPF_PROG_RUN live frames (max rate only).
    XdpLive,
}

/// A trial's offered rate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialRate {
    /// As fast as the generator goes.
    Max,
    /// Frames per second.
    Pps(f64),
}

/// What the agent answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply {
    /// The answer to `Hello`: the agent's versions.
    Hello {
        /// The agent's xdpipe version.
        version: String,
        /// The agent's protocol version.
        protocol: u32,
    },
    /// The settings are valid and kept.
    Prepared,
    /// The trial was accepted; the generator starts.
    Started,
    /// The trial's counts.
    Finished(Finished),
    /// The request could not be carried out.
    Error {
        /// Why.
        message: String,
    },
    /// The answer to `Bye`.
    Bye,
}

/// A trial's counts from the generator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finished {
    /// Frames put on the wire.
    pub sent: u64,
    /// Frames whose transmission completed.
    pub completed: u64,
    /// The generator's rate over its run.
    pub tx_pps: f64,
    /// How long it sent, seconds.
    pub duration_s: f64,
}

/// A line that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Longer than [`MAX_LINE`].
    #[error("a line longer than {MAX_LINE} bytes")]
    TooLong,
    /// Not UTF-8.
    #[error("a line that is not UTF-8")]
    NotUtf8,
    /// The input ended in the middle of a line.
    #[error("the input ended in the middle of a line")]
    Truncated,
    /// Reading failed.
    #[error("reading failed: {0}")]
    Io(String),
}

/// Reads one line of at most `max` bytes (without its newline); `None` at the end of
/// the input.
pub fn read_line_bounded<R: BufRead>(r: &mut R, max: usize) -> Result<Option<String>, LineError> {
    let mut buf = Vec::new();
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LineError::Io(e.to_string())),
        };
        if avail.is_empty() {
            return if buf.is_empty() { Ok(None) } else { Err(LineError::Truncated) };
        }
        if let Some(i) = avail.iter().position(|&b| b == b'\n') {
            buf.extend_from_slice(&avail[..i]);
            r.consume(i + 1);
            break;
        }
        let n = avail.len();
        buf.extend_from_slice(avail);
        r.consume(n);
        if buf.len() > max {
            return Err(LineError::TooLong);
        }
    }
    if buf.len() > max {
        return Err(LineError::TooLong);
    }
    String::from_utf8(buf).map(Some).map_err(|_| LineError::NotUtf8)
}

/// One event of a line reader thread: a line, the end of input, or a bad line (after
/// which the thread ends).
type LineEvent = Result<Option<String>, LineError>;

/// Reads lines of `input` in a thread and sends each through `tx`, ending after the
/// end of input or the first bad line.
fn spawn_reader<R: Read + Send + 'static, E: Send + 'static>(
    input: R,
    tx: mpsc::Sender<E>,
    wrap: fn(LineEvent) -> E,
) -> std::io::Result<()> {
    thread::Builder::new().name("xdpipe-agent-rd".into()).spawn(move || {
        let mut r = BufReader::new(input);
        loop {
            let ev = read_line_bounded(&mut r, MAX_LINE);
            let last = !matches!(ev, Ok(Some(_)));
            if tx.send(wrap(ev)).is_err() || last {
                return;
            }
        }
    })?;
    Ok(())
}

/// Writes `v` as one JSON line and flushes.
fn send_line<W: Write, T: Serialize>(w: &mut W, v: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(v).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)?;
    w.flush()
}

/// Why the client's session with the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The agent's output ended (the connection or the agent went away).
    #[error("the connection to the agent was lost {during}")]
    Lost {
        /// What the client was waiting for.
        during: String,
    },
    /// The agent sent something that is not a reply.
    #[error("the agent sent a malformed reply {during}: {detail}")]
    Malformed {
        /// What the client was waiting for.
        during: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The agent sent a reply that does not fit the protocol's order.
    #[error("the agent replied out of order: expected {expected}, got {got}")]
    OutOfOrder {
        /// The reply the protocol expects.
        expected: &'static str,
        /// The reply that came.
        got: String,
    },
    /// The agent is of another version.
    #[error(
        "the agent is xdpipe {theirs} (protocol {theirs_protocol}) and this is xdpipe {ours} (protocol {ours_protocol}): \
         install the same xdpipe on both hosts (or point --remote-xdpipe at it)"
    )]
    Version {
        /// This side's xdpipe version.
        ours: String,
        /// This side's protocol.
        ours_protocol: u32,
        /// The agent's xdpipe version.
        theirs: String,
        /// The agent's protocol.
        theirs_protocol: u32,
    },
    /// The agent refused the request.
    #[error("the agent refused: {0}")]
    Refused(String),
    /// No reply in time.
    #[error("no reply from the agent within {secs} s {during}")]
    Timeout {
        /// What the client was waiting for.
        during: String,
        /// How long it waited.
        secs: u64,
    },
}

/// The client's side: sends requests, checks each reply's type and order.
pub struct Session<W: Write> {
    out: W,
    rx: mpsc::Receiver<LineEvent>,
    /// The first end-of-input or bad line seen, kept: the reader thread has ended.
    ended: Option<LineEvent>,
}

/// How long the client waits for a reply outside a trial.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A short name of a reply's type, for messages.
fn kind(r: &Reply) -> String {
    match r {
        Reply::Hello { .. } => "hello",
        Reply::Prepared => "prepared",
        Reply::Started => "started",
        Reply::Finished(_) => "finished",
        Reply::Error { .. } => "error",
        Reply::Bye => "bye",
    }
    .into()
}

impl<W: Write> Session<W> {
    /// A session reading replies from `input` and writing requests to `out`.
    pub fn new<R: Read + Send + 'static>(input: R, out: W) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        spawn_reader(input, tx, |e| e)?;
        Ok(Session { out, rx, ended: None })
    }

    fn send(&mut self, r: &Request, during: &str) -> Result<(), SessionError> {
        send_line(&mut self.out, r).map_err(|_| SessionError::Lost { during: during.into() })
    }

    /// The next reply, waiting up to `timeout` (while `stop` is unset; when it becomes
    /// set, `on_stop` runs once).
    fn next(
        &mut self,
        during: &str,
        timeout: Duration,
        stop: Option<&AtomicBool>,
        on_stop: &mut dyn FnMut(&mut W),
    ) -> Result<Reply, SessionError> {
        let end = Instant::now() + timeout;
        let mut stopped = false;
        loop {
            let ev = match &self.ended {
                Some(e) => e.clone(),
                None => {
                    let left = end.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(SessionError::Timeout { during: during.into(), secs: timeout.as_secs() });
                    }
                    match self.rx.recv_timeout(left.min(Duration::from_millis(100))) {
                        Ok(ev) => ev,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            if !stopped && stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                                stopped = true;
                                on_stop(&mut self.out);
                            }
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => Ok(None),
                    }
                }
            };
            return match ev {
                Ok(Some(line)) => serde_json::from_str::<Reply>(&line).map_err(|e| SessionError::Malformed {
                    during: during.into(),
                    detail: format!("{e} in {:?}", line.chars().take(200).collect::<String>()),
                }),
                Ok(None) | Err(LineError::Truncated) | Err(LineError::Io(_)) => {
                    self.ended = Some(Ok(None));
                    Err(SessionError::Lost { during: during.into() })
                }
                Err(e) => {
                    self.ended = Some(Err(e.clone()));
                    Err(SessionError::Malformed { during: during.into(), detail: e.to_string() })
                }
            };
        }
    }

    fn reply(&mut self, during: &str) -> Result<Reply, SessionError> {
        self.next(during, REPLY_TIMEOUT, None, &mut |_| {})
    }

    /// The handshake: both sides' xdpipe and protocol versions must be equal.
    pub fn hello(&mut self) -> Result<(), SessionError> {
        let during = "at the handshake";
        self.send(&Request::Hello { version: VERSION.into(), protocol: PROTOCOL }, during)?;
        match self.reply(during)? {
            Reply::Hello { version, protocol } if version == VERSION && protocol == PROTOCOL => Ok(()),
            Reply::Hello { version, protocol } => Err(SessionError::Version {
                ours: VERSION.into(),
                ours_protocol: PROTOCOL,
                theirs: version,
                theirs_protocol: protocol,
            }),
            Reply::Error { message } => Err(SessionError::Refused(message)),
            other => Err(SessionError::OutOfOrder { expected: "hello", got: kind(&other) }),
        }
    }

    /// Sends the generator's settings; the agent validates them.
    pub fn prepare(&mut self, p: &Prepare) -> Result<(), SessionError> {
        let during = "while preparing the generator";
        self.send(&Request::Prepare(p.clone()), during)?;
        match self.reply(during)? {
            Reply::Prepared => Ok(()),
            Reply::Error { message } => Err(SessionError::Refused(message)),
            other => Err(SessionError::OutOfOrder { expected: "prepared", got: kind(&other) }),
        }
    }

    /// One trial: the agent sends at `rate` for `secs`. `started` runs once the agent
    /// has accepted it. When `stop` becomes set, the agent is told to stop early; its
    /// counts still come back.
    pub fn trial(&mut self, rate: TrialRate, secs: f64, stop: &AtomicBool) -> Result<Finished, SessionError> {
        let during = "during a trial";
        self.send(&Request::Trial { rate, secs }, during)?;
        match self.reply(during)? {
            Reply::Started => {}
            Reply::Error { message } => return Err(SessionError::Refused(message)),
            other => return Err(SessionError::OutOfOrder { expected: "started", got: kind(&other) }),
        }
        // The generator's setup, its run, and the agent's own margin.
        let timeout = Duration::from_secs_f64(secs.max(0.0) + 60.0);
        let mut on_stop = |out: &mut W| {
            let _ = send_line(out, &Request::Stop);
        };
        match self.next(during, timeout, Some(stop), &mut on_stop)? {
            Reply::Finished(f) => Ok(f),
            Reply::Error { message } => Err(SessionError::Refused(message)),
            other => Err(SessionError::OutOfOrder { expected: "finished", got: kind(&other) }),
        }
    }

    /// Ends the session politely (errors ignored: the session ends either way).
    pub fn bye(&mut self) {
        if self.send(&Request::Bye, "at the end").is_ok() {
            let _ = self.next("at the end", Duration::from_secs(5), None, &mut |_| {});
        }
    }
}

/// The agent's generator: what [`serve`] calls for each request.
pub trait Generator {
    /// Checks `p` (as `xdpipe gen` checks its flags) and keeps it for the trials.
    fn prepare(&mut self, p: &Prepare) -> Result<(), String>;
    /// Sends with the kept settings at `rate` for `secs`, ending early when `stop`
    /// becomes set.
    fn trial(&mut self, p: &Prepare, rate: TrialRate, secs: f64, stop: Arc<AtomicBool>) -> Result<Finished, String>;
}

/// Why the agent ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The client broke the protocol (the agent told it so before ending).
    #[error("{0}")]
    Protocol(String),
    /// The reply could not be written (the client went away).
    #[error("writing a reply: {0}")]
    Write(#[source] std::io::Error),
    /// The reader thread could not start.
    #[error("starting the reader thread: {0}")]
    Spawn(#[source] std::io::Error),
}

enum Event {
    Line(LineEvent),
    /// The trial thread has its result.
    Done,
}

/// The agent's loop: reads requests from `input`, answers on `output`, runs trials with
/// `g`. Returns at `Bye`, at the end of the input (a running trial stopped first), or
/// when `signal` is set; an out-of-order or malformed request is answered with an
/// `Error` and ends the loop with [`AgentError::Protocol`].
pub fn serve<R, W, G>(input: R, mut output: W, g: &mut G, signal: &AtomicBool) -> Result<(), AgentError>
where
    R: Read + Send + 'static,
    W: Write,
    G: Generator + Send,
{
    let (tx, rx) = mpsc::channel::<Event>();
    spawn_reader(input, tx.clone(), Event::Line).map_err(AgentError::Spawn)?;
    let mut out = |r: &Reply| send_line(&mut output, r).map_err(AgentError::Write);
    let mut greeted = false;
    let mut prepared: Option<Prepare> = None;
    loop {
        let ev = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(ev) => ev,
            Err(mpsc::RecvTimeoutError::Timeout) if signal.load(Ordering::Relaxed) => return Ok(()),
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        };
        let req = match ev {
            Event::Line(Ok(Some(line))) => match serde_json::from_str::<Request>(&line) {
                Ok(r) => r,
                Err(e) => {
                    let m = format!("malformed request: {e}");
                    out(&Reply::Error { message: m.clone() })?;
                    return Err(AgentError::Protocol(m));
                }
            },
            // The client (or its ssh session) is gone.
            Event::Line(Ok(None) | Err(LineError::Truncated | LineError::Io(_))) => return Ok(()),
            Event::Line(Err(e)) => {
                let m = format!("malformed request: {e}");
                out(&Reply::Error { message: m.clone() })?;
                return Err(AgentError::Protocol(m));
            }
            Event::Done => continue,
        };
        let refuse = |m: String, out: &mut dyn FnMut(&Reply) -> Result<(), AgentError>| {
            out(&Reply::Error { message: m.clone() })?;
            Err(AgentError::Protocol(m))
        };
        match req {
            Request::Hello { version, protocol } => {
                if greeted {
                    return refuse("a second hello".into(), &mut out);
                }
                greeted = true;
                out(&Reply::Hello { version: VERSION.into(), protocol: PROTOCOL })?;
                if version != VERSION || protocol != PROTOCOL {
                    return Err(AgentError::Protocol(format!(
                        "the client is xdpipe {version} (protocol {protocol}) and this agent is xdpipe {VERSION} (protocol {PROTOCOL})"
                    )));
                }
            }
            _ if !greeted => return refuse("the first request must be hello".into(), &mut out),
            Request::Prepare(p) => match g.prepare(&p) {
                Ok(()) => {
                    prepared = Some(p);
                    out(&Reply::Prepared)?;
                }
                Err(m) => {
                    prepared = None;
                    out(&Reply::Error { message: m })?;
                }
            },
            Request::Trial { rate, secs } => {
                let Some(p) = prepared.clone() else {
                    return refuse("a trial before the generator was prepared".into(), &mut out);
                };
                if !(secs > 0.0 && secs < 1e6) {
                    return refuse(format!("trial of {secs} s: give a positive number of seconds"), &mut out);
                }
                out(&Reply::Started)?;
                let stop = Arc::new(AtomicBool::new(false));
                let result = thread::scope(|s| {
                    let (tx, stop2, p) = (tx.clone(), stop.clone(), &p);
                    let gen_ref = &mut *g;
                    let h = s.spawn(move || {
                        let r = gen_ref.trial(p, rate, secs, stop2);
                        let _ = tx.send(Event::Done);
                        r
                    });
                    // Wait for the trial, answering what comes meanwhile.
                    let mut gone = false;
                    let mut broken = None;
                    loop {
                        match rx.recv_timeout(Duration::from_millis(100)) {
                            Ok(Event::Done) => break,
                            Ok(Event::Line(Ok(Some(line)))) => match serde_json::from_str::<Request>(&line) {
                                Ok(Request::Stop) => stop.store(true, Ordering::Relaxed),
                                Ok(other) => {
                                    stop.store(true, Ordering::Relaxed);
                                    broken.get_or_insert(format!("{other:?} during a trial (only stop is allowed)"));
                                }
                                Err(e) => {
                                    stop.store(true, Ordering::Relaxed);
                                    broken.get_or_insert(format!("malformed request: {e}"));
                                }
                            },
                            Ok(Event::Line(Ok(None) | Err(LineError::Truncated | LineError::Io(_)))) => {
                                stop.store(true, Ordering::Relaxed);
                                gone = true;
                            }
                            Ok(Event::Line(Err(e))) => {
                                stop.store(true, Ordering::Relaxed);
                                broken.get_or_insert(format!("malformed request: {e}"));
                            }
                            Err(_) if signal.load(Ordering::Relaxed) => stop.store(true, Ordering::Relaxed),
                            Err(_) => {}
                        }
                    }
                    let r = h.join().unwrap_or_else(|p| Err(crate::pipeline::panic_message(&p)));
                    (r, gone, broken)
                });
                match result {
                    (_, true, _) => return Ok(()),
                    (_, _, Some(m)) => return refuse(m, &mut out),
                    (Ok(f), _, _) => out(&Reply::Finished(f))?,
                    (Err(m), _, _) => out(&Reply::Error { message: m })?,
                }
            }
            Request::Stop => return refuse("stop outside a trial".into(), &mut out),
            Request::Bye => {
                out(&Reply::Bye)?;
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests;
