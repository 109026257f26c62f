//! The worker process: runs media operations sent by the server, one at a
//! time, under the memory and CPU limits it sets on itself.
//!
//! The server starts it as `recount media-worker` (see [`WorkerPool`]) and
//! writes one [`Request`] per line to its stdin; the worker answers each with
//! one [`Outcome`] per line on stdout, and exits at the end of its input. A
//! decoder that crashes, leaks or spins takes down only this process: the
//! server sees the worker die and the job's retry policy decides what next.
//!
//! [`WorkerPool`]: super::WorkerPool

use std::io::{BufRead, Write};
use std::panic::AssertUnwindSafe;

use serde::{Deserialize, Serialize};

use super::cancel::Cancel;
use super::error::MediaError;
use super::limits::MediaLimits;
use super::operation::{Operation, Outcome};

/// What the server asks of a worker: an operation and the limits it runs
/// under.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    /// What a clip may be, as in-process work would check it.
    pub limits: MediaLimits,
    /// CPU seconds this operation may use (all its threads together); past
    /// them the kernel kills the worker.
    pub cpu_seconds: u64,
    /// The work.
    pub operation: Operation,
}

/// The worker's own settings, from its command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSettings {
    /// Memory the worker may map beyond what it holds when it starts (the
    /// program and its libraries), in bytes; 0 for no limit.
    pub memory_bytes: u64,
}

/// Runs the worker on this process's stdin and stdout until stdin ends.
pub fn serve(settings: WorkerSettings) -> std::io::Result<()> {
    limit_self(settings)?;
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lines() {
        let line = line?;
        let (outcome, healthy) = answer(&line);
        serde_json::to_writer(&mut stdout, &outcome)?;
        stdout.write_all(b"\n")?;
        stdout.flush()?;
        if !healthy {
            // A panic may have left FFmpeg's state half-torn: a fresh
            // process serves the next operation.
            break;
        }
    }
    Ok(())
}

/// Runs one request line; false when the process should not run another.
fn answer(line: &str) -> (Outcome, bool) {
    let request: Request = match serde_json::from_str(line) {
        Ok(r) => r,
        Err(e) => {
            return (
                Err(MediaError::new(
                    MediaError::INTERNAL,
                    format!("the media worker could not read its request: {e}"),
                )),
                false,
            )
        }
    };
    if let Err(e) = limit_cpu(request.cpu_seconds) {
        return (
            Err(MediaError::io("setting the worker's CPU limit", e)),
            false,
        );
    }
    let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
        request.operation.run(&request.limits, &Cancel::new())
    }));
    match run {
        Ok(outcome) => (outcome, true),
        Err(_) => (
            Err(MediaError::new(
                MediaError::INTERNAL,
                format!("{} panicked in the media worker", request.operation.name()),
            )),
            false,
        ),
    }
}

/// No core files from a crash (they would hold shoppers' video), and the
/// memory limit.
fn limit_self(settings: WorkerSettings) -> std::io::Result<()> {
    set_limit(libc::RLIMIT_CORE, 0)?;
    if settings.memory_bytes > 0 {
        let held = mapped_bytes()?;
        set_limit(libc::RLIMIT_AS, held.saturating_add(settings.memory_bytes))?;
    }
    Ok(())
}

/// Lets the next operation use `seconds` of CPU beyond what this process
/// used so far; past them the kernel sends SIGXCPU, which ends the process.
fn limit_cpu(seconds: u64) -> std::io::Result<()> {
    if seconds == 0 {
        return Ok(());
    }
    set_limit(
        libc::RLIMIT_CPU,
        cpu_seconds_used()?.saturating_add(seconds),
    )
}

/// Sets the soft limit of `resource`, up to the hard limit (which only a
/// privileged process could raise again, so it is left alone).
fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    if unsafe { libc::getrlimit(resource, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    limit.rlim_cur = value.min(limit.rlim_max);
    // SAFETY: setrlimit reads the struct we own.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// CPU seconds this process has used (user and system), rounded up.
fn cpu_seconds_used() -> std::io::Result<u64> {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage into the struct we own.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Ok((micros(usage.ru_utime) + micros(usage.ru_stime)).div_ceil(1_000_000))
}

/// The address space this process maps now (`/proc/self/statm`'s size).
fn mapped_bytes() -> std::io::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| std::io::Error::other("unreadable /proc/self/statm"))?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Ok(pages * page.max(4096) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_request_is_answered_and_ends_the_worker() {
        let (outcome, healthy) = answer("{not json");
        assert_eq!(outcome.unwrap_err().code, "internal");
        assert!(!healthy);
    }

    #[test]
    fn a_failed_operation_is_answered_and_the_worker_goes_on() {
        let request = Request {
            limits: MediaLimits::default(),
            cpu_seconds: 0,
            operation: Operation::Probe {
                input: "/nonexistent/recount-worker-test".into(),
            },
        };
        let (outcome, healthy) = answer(&serde_json::to_string(&request).unwrap());
        assert!(outcome.is_err());
        assert!(healthy);
    }

    #[test]
    fn the_address_space_and_cpu_time_can_be_read() {
        assert!(mapped_bytes().unwrap() > 0);
        assert!(cpu_seconds_used().is_ok());
    }
}
