//! The server's side of the worker processes: a small pool of
//! `recount media-worker` processes, each reused for many operations.
//!
//! An operation borrows an idle worker (or starts one), writes its
//! [`Request`] and reads the answer within the time limit. A worker that
//! dies on the way (a crash, a kill, its own memory or CPU limit) fails
//! that operation with `media-crashed`; one past the time limit is killed
//! and the operation fails with `timeout`. Either way the process is gone
//! and the next operation starts a fresh one; the server itself is never
//! touched. Dropping an operation's future (a job aborted) kills its
//! worker too.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::error::{MediaError, MediaResult};
use super::limits::MediaLimits;
use super::operation::{Operation, Outcome};
use super::worker::Request;

/// Operations one worker runs before it is replaced: bounds what a slow
/// leak in a decoder can accumulate.
const RUNS_PER_WORKER: u32 = 200;

/// How long a worker whose output ended gets to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// How to start a worker process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerCommand {
    /// The program (the `recount` binary).
    pub program: PathBuf,
    /// Its arguments (`media-worker` and the worker's settings).
    pub args: Vec<OsString>,
    /// CPU seconds one operation may use, all threads together (0: no
    /// limit beyond the wall-clock timeout).
    pub cpu_seconds: u64,
}

/// A worker process between two operations.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pid: u32,
    runs: u32,
}

/// The pool of worker processes of one server.
pub struct WorkerPool {
    command: WorkerCommand,
    idle: Mutex<Vec<Worker>>,
    /// Workers running an operation: process id → operation name.
    busy: Mutex<BTreeMap<u32, &'static str>>,
    started: std::sync::atomic::AtomicU64,
}

/// A worker running an operation, as [`WorkerPool::busy`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusyWorker {
    /// Its process id.
    pub pid: u32,
    /// The operation it runs.
    pub operation: &'static str,
}

impl WorkerPool {
    /// A pool that starts its workers with `command`, none started yet.
    pub fn new(command: WorkerCommand) -> WorkerPool {
        WorkerPool {
            command,
            idle: Mutex::new(Vec::new()),
            busy: Mutex::new(BTreeMap::new()),
            started: Default::default(),
        }
    }

    /// Starts workers until `count` are idle, so the first operations do
    /// not wait for a process to start.
    pub fn warm(&self, count: usize) -> MediaResult<()> {
        while self.idle.lock().expect("worker pool").len() < count {
            let worker = self.start()?;
            self.idle.lock().expect("worker pool").push(worker);
        }
        Ok(())
    }

    /// Workers running an operation now.
    pub fn busy(&self) -> Vec<BusyWorker> {
        self.busy
            .lock()
            .expect("worker pool")
            .iter()
            .map(|(&pid, &operation)| BusyWorker { pid, operation })
            .collect()
    }

    /// Process ids of every live worker, idle or busy.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .busy
            .lock()
            .expect("worker pool")
            .keys()
            .copied()
            .collect();
        pids.extend(self.idle.lock().expect("worker pool").iter().map(|w| w.pid));
        pids
    }

    /// Worker processes started so far.
    pub fn started(&self) -> u64 {
        self.started.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `operation` in a worker within `limits` (its `timeout` too).
    pub async fn call(&self, operation: &Operation, limits: &MediaLimits) -> Outcome {
        let mut worker = self.take()?;
        let name = operation.name();
        let _busy = Busy::mark(self, worker.pid, name);
        let request = Request {
            limits: limits.clone(),
            cpu_seconds: self.command.cpu_seconds,
            operation: operation.clone(),
        };
        let mut line = serde_json::to_string(&request).map_err(|e| {
            MediaError::new(MediaError::INTERNAL, format!("writing the request: {e}"))
        })?;
        line.push('\n');
        let exchange = async {
            worker.stdin.write_all(line.as_bytes()).await?;
            worker.stdin.flush().await?;
            let mut answer = String::new();
            worker.stdout.read_line(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        };
        let answer = match tokio::time::timeout(limits.timeout, exchange).await {
            Ok(Ok(answer)) if answer.ends_with('\n') => answer,
            // The output ended or broke off mid-line: the worker died under
            // the operation.
            Ok(_) => {
                let status = ended(&mut worker.child).await;
                return Err(MediaError::new(
                    MediaError::CRASHED,
                    format!("the media worker died during {name}: {}", describe(status)),
                ));
            }
            Err(_) => {
                let _ = worker.child.start_kill();
                let _ = worker.child.wait().await;
                return Err(MediaError::new(
                    MediaError::TIMEOUT,
                    format!(
                        "{name} took longer than {} ms and its worker was stopped",
                        limits.timeout.as_millis()
                    ),
                ));
            }
        };
        let outcome: Outcome = serde_json::from_str(&answer).map_err(|e| {
            MediaError::new(
                MediaError::INTERNAL,
                format!("the media worker's answer to {name} is unreadable: {e}"),
            )
        })?;
        worker.runs += 1;
        // After an internal error (a panic, an unreadable request) the worker
        // ends itself; otherwise it serves again until its runs are used up.
        let reusable = !matches!(&outcome, Err(e) if e.code == MediaError::INTERNAL);
        if reusable && worker.runs < RUNS_PER_WORKER {
            self.idle.lock().expect("worker pool").push(worker);
        }
        outcome
    }

    /// An idle worker still alive, or a new one.
    fn take(&self) -> MediaResult<Worker> {
        loop {
            let next = self.idle.lock().expect("worker pool").pop();
            match next {
                Some(mut worker) => {
                    // One that died while idle (killed from outside) is
                    // dropped, not blamed on the next operation.
                    if matches!(worker.child.try_wait(), Ok(None)) {
                        return Ok(worker);
                    }
                }
                None => return self.start(),
            }
        }
    }

    fn start(&self) -> MediaResult<Worker> {
        let mut child = Command::new(&self.command.program)
            .args(&self.command.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                MediaError::new(
                    MediaError::INTERNAL,
                    format!(
                        "starting the media worker {}: {e}",
                        self.command.program.display()
                    ),
                )
            })?;
        let taken = (child.stdin.take(), child.stdout.take(), child.id());
        let (Some(stdin), Some(stdout), Some(pid)) = taken else {
            return Err(MediaError::new(
                MediaError::INTERNAL,
                "the media worker started without its pipes",
            ));
        };
        self.started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Worker {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            pid,
            runs: 0,
        })
    }
}

/// Marks a worker busy for as long as it lives.
struct Busy<'a> {
    pool: &'a WorkerPool,
    pid: u32,
}

impl<'a> Busy<'a> {
    fn mark(pool: &'a WorkerPool, pid: u32, operation: &'static str) -> Busy<'a> {
        pool.busy
            .lock()
            .expect("worker pool")
            .insert(pid, operation);
        Busy { pool, pid }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.pool
            .busy
            .lock()
            .expect("worker pool")
            .remove(&self.pid);
    }
}

/// How a worker whose output ended finished: it is given a moment to exit,
/// then killed.
async fn ended(child: &mut Child) -> Option<ExitStatus> {
    match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
        Ok(status) => status.ok(),
        Err(_) => {
            let _ = child.start_kill();
            child.wait().await.ok()
        }
    }
}

/// An exit status for a person: the signal's name when a signal ended it.
fn describe(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    let Some(status) = status else {
        return "its exit status is unknown".into();
    };
    match (status.signal(), status.code()) {
        (Some(signal), _) => format!("ended by signal {signal} ({})", signal_name(signal)),
        (None, Some(code)) => format!("exited with status {code}"),
        (None, None) => "ended".into(),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => "SIGSEGV, a crash",
        libc::SIGABRT => "SIGABRT, an abort",
        libc::SIGBUS => "SIGBUS, a crash",
        libc::SIGFPE => "SIGFPE, a crash",
        libc::SIGILL => "SIGILL, a crash",
        libc::SIGKILL => "SIGKILL, killed",
        libc::SIGTERM => "SIGTERM, stopped",
        libc::SIGXCPU => "SIGXCPU, past its CPU limit",
        _ => "another signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn a_signal_is_named() {
        let segv = ExitStatus::from_raw(libc::SIGSEGV);
        assert_eq!(
            describe(Some(segv)),
            "ended by signal 11 (SIGSEGV, a crash)"
        );
        let exited = ExitStatus::from_raw(3 << 8);
        assert_eq!(describe(Some(exited)), "exited with status 3");
        assert_eq!(describe(None), "its exit status is unknown");
    }

    fn shell(script: &str) -> WorkerPool {
        WorkerPool::new(WorkerCommand {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            cpu_seconds: 0,
        })
    }

    fn probe() -> Operation {
        Operation::Probe {
            input: "/nonexistent".into(),
        }
    }

    #[tokio::test]
    async fn a_worker_that_dies_fails_the_operation_as_crashed() {
        let pool = shell("read line; kill -SEGV $$");
        let err = pool
            .call(&probe(), &MediaLimits::default())
            .await
            .unwrap_err();
        assert_eq!(err.code, "media-crashed");
        assert!(err.message.contains("SIGSEGV"), "{}", err.message);
        assert!(pool.busy().is_empty());
    }

    #[tokio::test]
    async fn a_worker_past_the_timeout_is_killed() {
        let pool = shell("read line; exec sleep 60");
        let limits = MediaLimits {
            timeout: Duration::from_millis(200),
            ..MediaLimits::default()
        };
        let err = pool.call(&probe(), &limits).await.unwrap_err();
        assert_eq!(err.code, "timeout");
        assert!(pool.busy().is_empty());
        assert_eq!(pool.idle.lock().unwrap().len(), 0);
    }

    #[tokio::test]
    async fn a_garbled_answer_is_an_internal_error() {
        let pool = shell("read line; echo garbage; sleep 60");
        let err = pool
            .call(&probe(), &MediaLimits::default())
            .await
            .unwrap_err();
        assert_eq!(err.code, "internal");
    }

    #[tokio::test]
    async fn a_program_that_cannot_start_is_an_internal_error() {
        let pool = WorkerPool::new(WorkerCommand {
            program: "/nonexistent/recount".into(),
            args: vec![],
            cpu_seconds: 0,
        });
        let err = pool
            .call(&probe(), &MediaLimits::default())
            .await
            .unwrap_err();
        assert_eq!(err.code, "internal");
        assert_eq!(pool.started(), 0);
    }
}
