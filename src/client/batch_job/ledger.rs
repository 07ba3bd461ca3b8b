//! The books of a batch run: the work still to hand out (with retries waiting out their
//! backoff), the output and errors files, and the counts.
//!
//! Lanes (one per endpoint, or the in-process engine) take work with [`Ledger::next`] and
//! give every item back exactly once: [`Ledger::settle`] with its outcome, or
//! [`Ledger::requeue`] when the stream it was on broke. An item is written to the output
//! once, when its result arrives, and flushed at once, so a killed run loses nothing it
//! had finished.

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::watch;

use super::input::{Item, Rejected};
use crate::pb::ItemError;

/// An item on its way through the lanes.
#[derive(Debug)]
pub struct Work {
    /// The input item.
    pub item: Item,
    /// Attempts made so far.
    pub attempts: u32,
}

/// When and how often failed items are tried again.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Most attempts per item (the first included).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub base: Duration,
    /// Longest wait between attempts (also caps the server's pushback hint).
    pub cap: Duration,
}

impl RetryPolicy {
    /// The wait before attempt `attempts + 1`: exponential backoff with ±25 % jitter,
    /// at least the server's hint, at most the cap.
    pub fn backoff(&self, attempts: u32, hint: Duration) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(16));
        let jitter = 0.75 + 0.5 * unit_random();
        exp.mul_f64(jitter).max(hint).min(self.cap)
    }
}

/// A number in [0, 1) that differs between calls (std's hasher keys are random).
fn unit_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Codes worth another attempt: the server was down, overloaded or out of time.
pub fn retryable(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable | tonic::Code::ResourceExhausted | tonic::Code::DeadlineExceeded
    )
}

/// Counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Items whose result was written.
    pub done: usize,
    /// Items already in the output from an earlier run.
    pub skipped: usize,
    /// Items (and input lines) written to the errors file.
    pub failed: usize,
    /// Retries made.
    pub retries: usize,
}

#[derive(Default)]
struct State {
    ready: VecDeque<Work>,
    /// Retries waiting out their backoff: (not before, work).
    delayed: Vec<(Instant, Work)>,
    in_flight: usize,
    input_done: bool,
    counts: Counts,
}

impl State {
    fn pop_due(&mut self, now: Instant) -> Option<Work> {
        let due = self
            .delayed
            .iter()
            .enumerate()
            .filter(|(_, (t, _))| *t <= now)
            .min_by_key(|(_, (t, _))| *t)
            .map(|(i, _)| i);
        match due {
            Some(i) => Some(self.delayed.swap_remove(i).1),
            None => self.ready.pop_front(),
        }
    }

    fn finished(&self) -> bool {
        self.input_done && self.ready.is_empty() && self.delayed.is_empty() && self.in_flight == 0
    }
}

/// Where results and failures go.
pub struct Sink {
    output: Box<dyn Write + Send>,
    errors: BufWriter<File>,
    written: HashSet<String>,
}

impl Sink {
    /// Append results to `output` (stdout for `-`) and write failures to `errors`
    /// (truncated: it describes this run).
    ///
    /// # Errors
    /// When a file cannot be opened.
    pub fn open(output: &Path, errors: &Path, done: &HashSet<String>) -> anyhow::Result<Sink> {
        let out: Box<dyn Write + Send> = if output == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            let file = File::options()
                .create(true)
                .append(true)
                .open(output)
                .map_err(|e| anyhow::anyhow!("cannot open {} (--output): {e}", output.display()))?;
            Box::new(BufWriter::new(file))
        };
        let errors_file = File::create(errors)
            .map_err(|e| anyhow::anyhow!("cannot create {} (--errors): {e}", errors.display()))?;
        Ok(Sink {
            output: out,
            errors: BufWriter::new(errors_file),
            written: done.clone(),
        })
    }

    fn result(&mut self, item: &Item, mut value: Value) -> std::io::Result<bool> {
        if !self.written.insert(item.id.clone()) {
            tracing::warn!(id = %item.id, "a second result for an id already written: ignored");
            return Ok(false);
        }
        if let Value::Object(object) = &mut value {
            object.insert("id".into(), item.id_value.clone());
        }
        let mut line = serde_json::to_vec(&value).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.output.write_all(&line)?;
        self.output.flush()?;
        Ok(true)
    }

    fn error(&mut self, record: Value) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.errors.write_all(&line)?;
        self.errors.flush()
    }
}

/// Shared by the reader, the lanes and the progress display.
pub struct Ledger {
    state: Mutex<State>,
    /// The reader waits here while enough work is ready.
    room: Condvar,
    /// Bumped on every change lanes may be waiting for.
    changed: watch::Sender<u64>,
    sink: Mutex<Sink>,
    policy: RetryPolicy,
    read_ahead: usize,
    on_settled: Box<dyn Fn(Counts) + Send + Sync>,
}

impl Ledger {
    /// A ledger writing to `sink`; the reader keeps at most `read_ahead` items ready;
    /// `on_settled` sees the counts after each item is settled (for progress).
    pub fn new(
        sink: Sink,
        policy: RetryPolicy,
        read_ahead: usize,
        on_settled: Box<dyn Fn(Counts) + Send + Sync>,
    ) -> Ledger {
        Ledger {
            state: Mutex::new(State::default()),
            room: Condvar::new(),
            changed: watch::channel(0).0,
            sink: Mutex::new(sink),
            policy,
            read_ahead: read_ahead.max(1),
            on_settled,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sink(&self) -> MutexGuard<'_, Sink> {
        self.sink.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        self.lock().counts
    }

    /// Add an input item (from the reader thread; blocks while `read_ahead` items wait).
    pub fn push(&self, item: Item) {
        let mut st = self.lock();
        while st.ready.len() >= self.read_ahead {
            st = self.room.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.ready.push_back(Work { item, attempts: 0 });
        drop(st);
        self.bump();
    }

    /// Count an input line whose id is already in the output.
    pub fn skipped(&self) {
        self.lock().counts.skipped += 1;
    }

    /// Report an input line that is not processed.
    ///
    /// # Errors
    /// When the errors file cannot be written.
    pub fn rejected(&self, rejected: Rejected) -> std::io::Result<()> {
        let record = match &rejected {
            Rejected::Malformed { line, reason } => {
                tracing::warn!(line, "input line skipped: {reason}");
                json!({"id": null, "line": line, "code": "MALFORMED_LINE", "message": reason, "attempts": 0})
            }
            Rejected::Duplicate {
                line,
                id_value,
                first,
            } => {
                let message = format!(
                    "duplicate id: line {first} has the same id; this line was not processed"
                );
                tracing::warn!(line, id = %id_value, "input line skipped: {message}");
                json!({"id": id_value, "line": line, "code": "DUPLICATE_ID", "message": message, "attempts": 0})
            }
        };
        self.sink().error(record)?;
        let counts = {
            let mut st = self.lock();
            st.counts.failed += 1;
            st.counts
        };
        (self.on_settled)(counts);
        Ok(())
    }

    /// No more input will come.
    pub fn input_done(&self) {
        self.lock().input_done = true;
        self.bump();
    }

    /// The next item to send: a retry whose wait is over, else the next input item. Waits
    /// while none is ready; `None` once every item is settled and the input has ended.
    pub async fn next(&self, changed: &mut watch::Receiver<u64>) -> Option<Work> {
        loop {
            changed.borrow_and_update();
            let wake = {
                let mut st = self.lock();
                if let Some(work) = st.pop_due(Instant::now()) {
                    st.in_flight += 1;
                    drop(st);
                    self.room.notify_one();
                    return Some(work);
                }
                if st.finished() {
                    return None;
                }
                st.delayed.iter().map(|(t, _)| *t).min()
            };
            match wake {
                Some(at) => {
                    tokio::select! {
                        _ = changed.changed() => {}
                        _ = tokio::time::sleep_until(at.into()) => {}
                    }
                }
                None => {
                    if changed.changed().await.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    /// Resolves once every item is settled and the input has ended.
    pub async fn finished(&self) {
        let mut changed = self.watch();
        loop {
            changed.borrow_and_update();
            if self.lock().finished() || changed.changed().await.is_err() {
                return;
            }
        }
    }

    /// A receiver for [`Ledger::next`].
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Record the outcome of an item taken with [`Ledger::next`]: write its result, or
    /// schedule a retry (transient codes, attempts left), or write it to the errors file.
    ///
    /// # Errors
    /// When the output or errors file cannot be written.
    pub fn settle(&self, mut work: Work, outcome: Result<Value, ItemError>) -> std::io::Result<()> {
        work.attempts += 1;
        match outcome {
            Ok(value) => {
                let written = self.sink().result(&work.item, value)?;
                self.finish(|c| c.done += usize::from(written));
            }
            Err(error) => {
                let code = tonic::Code::from(error.code);
                let hint = Duration::from_millis(u64::from(error.retry_after_ms));
                if retryable(code) && work.attempts < self.policy.max_attempts {
                    self.retry(work, hint, code, &error.message);
                } else {
                    self.fail(work, code, &error.message)?;
                }
            }
        }
        Ok(())
    }

    /// Give back an item whose stream broke before it was answered: it is tried again
    /// (on any lane) unless it has had all its attempts.
    ///
    /// # Errors
    /// When the errors file cannot be written.
    pub fn requeue(&self, mut work: Work, code: tonic::Code, message: &str) -> std::io::Result<()> {
        work.attempts += 1;
        if work.attempts < self.policy.max_attempts {
            self.retry(work, Duration::ZERO, code, message);
            Ok(())
        } else {
            self.fail(work, code, message)
        }
    }

    /// Fail an item outright (no lane is left to run it).
    ///
    /// # Errors
    /// When the errors file cannot be written.
    pub fn abandon(&self, work: Work, message: &str) -> std::io::Result<()> {
        self.fail(work, tonic::Code::Unavailable, message)
    }

    fn retry(&self, work: Work, hint: Duration, code: tonic::Code, message: &str) {
        let wait = self.policy.backoff(work.attempts, hint);
        tracing::debug!(id = %work.item.id, attempts = work.attempts, wait_ms = wait.as_millis() as u64, code = crate::pb::code_name(code), message, "retrying");
        let mut st = self.lock();
        st.in_flight -= 1;
        st.counts.retries += 1;
        st.delayed.push((Instant::now() + wait, work));
        drop(st);
        self.bump();
    }

    fn fail(&self, work: Work, code: tonic::Code, message: &str) -> std::io::Result<()> {
        let code = crate::pb::code_name(code);
        tracing::warn!(id = %work.item.id, line = work.item.line, attempts = work.attempts, code, "item failed: {message}");
        self.sink().error(json!({
            "id": work.item.id_value,
            "line": work.item.line,
            "code": code,
            "message": message,
            "attempts": work.attempts,
        }))?;
        self.finish(|c| c.failed += 1);
        Ok(())
    }

    fn finish(&self, count: impl FnOnce(&mut Counts)) {
        let counts = {
            let mut st = self.lock();
            st.in_flight -= 1;
            count(&mut st.counts);
            st.counts
        };
        self.bump();
        (self.on_settled)(counts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str) -> Item {
        Item {
            line: 1,
            id: id.into(),
            id_value: json!(id),
            text: "t".into(),
        }
    }

    fn ledger(dir: &Path, max_attempts: u32) -> Ledger {
        let sink = Sink::open(&dir.join("out"), &dir.join("err"), &HashSet::new()).unwrap();
        let policy = RetryPolicy {
            max_attempts,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(5),
        };
        Ledger::new(sink, policy, 8, Box::new(|_| {}))
    }

    #[test]
    fn backoff_grows_honours_hints_and_caps() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        };
        let first = p.backoff(1, Duration::ZERO);
        assert!(first >= Duration::from_millis(75) && first <= Duration::from_millis(125));
        let third = p.backoff(3, Duration::ZERO);
        assert!(third >= Duration::from_millis(300) && third <= Duration::from_millis(500));
        assert_eq!(p.backoff(20, Duration::ZERO), Duration::from_secs(2));
        assert!(p.backoff(1, Duration::from_millis(900)) >= Duration::from_millis(900));
        assert_eq!(
            p.backoff(1, Duration::from_secs(60)),
            Duration::from_secs(2)
        );
    }

    #[tokio::test]
    async fn items_are_retried_then_failed_and_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ledger(dir.path(), 2);
        let mut rx = ledger.watch();
        ledger.push(item("a"));
        ledger.push(item("b"));
        ledger.input_done();
        let busy = ItemError {
            code: tonic::Code::Unavailable as i32,
            message: "down".into(),
            retry_after_ms: 0,
        };
        let a = ledger.next(&mut rx).await.unwrap();
        ledger.settle(a, Err(busy.clone())).unwrap();
        let b = ledger.next(&mut rx).await.unwrap();
        assert_eq!(b.item.id, "b");
        ledger.settle(b, Ok(json!({"summary": "B"}))).unwrap();
        // "a" comes back after its backoff, and fails for good on its second attempt.
        let a = ledger.next(&mut rx).await.unwrap();
        assert_eq!((a.item.id.as_str(), a.attempts), ("a", 1));
        ledger.settle(a, Err(busy)).unwrap();
        assert!(ledger.next(&mut rx).await.is_none());
        assert_eq!(
            ledger.counts(),
            Counts {
                done: 1,
                skipped: 0,
                failed: 1,
                retries: 1
            }
        );
        let out = std::fs::read_to_string(dir.path().join("out")).unwrap();
        assert_eq!(out, "{\"id\":\"b\",\"summary\":\"B\"}\n");
        let err = std::fs::read_to_string(dir.path().join("err")).unwrap();
        let record: Value = serde_json::from_str(err.trim()).unwrap();
        assert_eq!(record["code"], "UNAVAILABLE");
        assert_eq!(record["attempts"], 2);
    }

    #[tokio::test]
    async fn invalid_items_are_not_retried() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ledger(dir.path(), 5);
        let mut rx = ledger.watch();
        ledger.push(item("a"));
        ledger.input_done();
        let a = ledger.next(&mut rx).await.unwrap();
        let invalid = ItemError {
            code: tonic::Code::InvalidArgument as i32,
            message: "text: must not be empty".into(),
            retry_after_ms: 0,
        };
        ledger.settle(a, Err(invalid)).unwrap();
        assert!(ledger.next(&mut rx).await.is_none());
        assert_eq!(ledger.counts().failed, 1);
        assert_eq!(ledger.counts().retries, 0);
    }
}
