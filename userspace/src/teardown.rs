//! What must be undone on every way out of the process: testbed namespaces, a QEMU guest,
//! offloads switched off. Each such change registers an undo action here and gets an
//! [`Undo`]; dropping the [`Undo`] (the normal end, an error, a panic that unwinds) runs
//! the action once, [`Undo::disarm`] forgets it (a testbed kept for the user).
//!
//! [`run_all`] is for the one way out that skips destructors: a second SIGINT/SIGTERM/
//! SIGHUP, after which the CLI's signal thread calls `exit(130)`. It runs every action
//! still registered, newest first, waits (up to a deadline) for actions another thread
//! has already started, and returns. Each action runs at most once, whoever starts it.
use std::{
    sync::{Condvar, Mutex, MutexGuard},
    time::{Duration, Instant},
};

type Action = Box<dyn FnOnce() + Send>;

struct State {
    next: u64,
    /// Registered and not yet started: (id, what, action), oldest first.
    pending: Vec<(u64, String, Action)>,
    /// Actions taken out of `pending` and still running.
    running: usize,
}

static STATE: Mutex<State> = Mutex::new(State { next: 0, pending: Vec::new(), running: 0 });
static DONE: Condvar = Condvar::new();

fn state() -> MutexGuard<'static, State> {
    // A panic inside an action happens outside the lock; the state stays consistent.
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// A registered undo action: runs when dropped, unless disarmed or already run by
/// [`run_all`].
#[derive(Debug)]
#[must_use = "dropping the Undo runs the action at once"]
pub struct Undo {
    id: Option<u64>,
}

/// Registers `action` (described by `what`, for messages) to run on the way out.
pub fn register(what: impl Into<String>, action: impl FnOnce() + Send + 'static) -> Undo {
    let mut s = state();
    let id = s.next;
    s.next += 1;
    s.pending.push((id, what.into(), Box::new(action)));
    Undo { id: Some(id) }
}

/// Takes the action `id` out of the registry, counted as running.
fn take(id: u64) -> Option<Action> {
    let mut s = state();
    let at = s.pending.iter().position(|(i, _, _)| *i == id)?;
    let (_, _, action) = s.pending.remove(at);
    s.running += 1;
    Some(action)
}

fn finished() {
    let mut s = state();
    s.running -= 1;
    drop(s);
    DONE.notify_all();
}

/// Runs `action`, counted as running until it returns or unwinds.
fn run_counted(action: Action) {
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            finished();
        }
    }
    let _done = Done;
    action();
}

impl Undo {
    /// Runs the action now (if nothing ran it yet).
    pub fn run(mut self) {
        self.run_once();
    }

    /// Forgets the action without running it.
    pub fn disarm(mut self) {
        if let Some(id) = self.id.take() {
            let mut s = state();
            s.pending.retain(|(i, _, _)| *i != id);
        }
    }

    fn run_once(&mut self) {
        if let Some(action) = self.id.take().and_then(take) {
            run_counted(action);
        }
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        self.run_once();
    }
}

/// How many actions are registered and not started.
pub fn pending() -> usize {
    state().pending.len()
}

/// Runs every registered action, newest first, then waits until actions other threads
/// started have finished or `deadline` has passed. Returns what it ran (by description)
/// and whether everything finished in time.
pub fn run_all(deadline: Duration) -> (Vec<String>, bool) {
    let end = Instant::now() + deadline;
    let mut ran = Vec::new();
    loop {
        let next = {
            let mut s = state();
            let Some((_, what, action)) = s.pending.pop() else { break };
            s.running += 1;
            (what, action)
        };
        run_counted(next.1);
        ran.push(next.0);
    }
    let mut s = state();
    while s.running > 0 {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (ran, false);
        }
        s = DONE.wait_timeout(s, left).unwrap_or_else(|p| p.into_inner()).0;
    }
    (ran, true)
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    };

    use super::*;

    // One test: the registry is process-wide, and tests run in parallel.
    #[test]
    fn each_action_runs_once_whoever_starts_it() {
        let n = Arc::new(AtomicU32::new(0));
        let count = |n: &Arc<AtomicU32>, by: u32| {
            let n = n.clone();
            move || {
                n.fetch_add(by, Ordering::SeqCst);
            }
        };
        // Dropped: runs once.
        drop(register("a", count(&n, 1)));
        assert_eq!(n.load(Ordering::SeqCst), 1);
        // Disarmed: never runs, not even from run_all.
        register("b", count(&n, 100)).disarm();
        // Run by run_all (newest first), then dropped: not again.
        let order = Arc::new(Mutex::new(Vec::new()));
        let o1 = order.clone();
        let u1 = register("first", move || o1.lock().unwrap().push(1));
        let o2 = order.clone();
        let u2 = register("second", move || o2.lock().unwrap().push(2));
        let u3 = register("c", count(&n, 10));
        let (ran, all) = run_all(Duration::from_secs(1));
        assert!(all);
        assert!(ran.contains(&"first".to_owned()) && ran.contains(&"c".to_owned()), "{ran:?}");
        assert_eq!(*order.lock().unwrap(), vec![2, 1]);
        drop((u1, u2));
        u3.run();
        assert_eq!(n.load(Ordering::SeqCst), 11);
        // run_all waits for an action another thread is running.
        let slow = register("slow", || std::thread::sleep(Duration::from_millis(300)));
        let t = std::thread::spawn(move || slow.run());
        std::thread::sleep(Duration::from_millis(50));
        let t0 = Instant::now();
        let (_, all) = run_all(Duration::from_secs(2));
        assert!(all && t0.elapsed() >= Duration::from_millis(150), "{:?}", t0.elapsed());
        t.join().unwrap();
    }
}
