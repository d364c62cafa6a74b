#![allow(dead_code)] // each test binary uses part of it
//! Runs a program the tests built or need (an example, make, cmake, pip,
//! pytest, node) to its end, with a time limit: a hang is a failure, not a
//! stuck test run. Its stdout and stderr are read as it runs.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub struct Run {
    /// The command line, for messages.
    pub shown: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Its stdout, after checking that it exited 0 (else a panic that
    /// shows both outputs).
    pub fn succeeded(self) -> String {
        assert!(self.status.success(), "{}", self.describe());
        self.stdout
    }

    pub fn describe(&self) -> String {
        format!(
            "{}: exit status {}\n--- stdout\n{}\n--- stderr\n{}",
            self.shown, self.status, self.stdout, self.stderr
        )
    }

    pub fn assert_lines(&self, wanted: &[&str]) {
        for w in wanted {
            assert!(
                self.stdout.lines().any(|l| l.contains(w)),
                "no line with {w:?}\n{}",
                self.describe()
            );
        }
    }

    /// Exit 0, every wanted line printed, and `last` as the final line.
    pub fn assert_passed(&self, wanted: &[&str], last: &str) {
        assert!(self.status.success(), "{}", self.describe());
        self.assert_lines(wanted);
        assert_eq!(
            self.stdout.lines().last(),
            Some(last),
            "{}",
            self.describe()
        );
    }
}

/// Runs `cmd` (stdin closed) to its end; past `limit` kills it and panics.
/// Panics, naming `what`, when it cannot be started.
pub fn run(cmd: &mut Command, what: &str, limit: Duration) -> Run {
    let (shown, mut child) = spawn(cmd, what);
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for child") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let s = child.wait().expect("wait for killed child");
            panic!(
                "{what}: {shown} still running after {limit:?}, killed ({s})\n--- stdout\n{}\n--- stderr\n{}",
                out.join().unwrap(),
                err.join().unwrap()
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    Run {
        shown,
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Starts `cmd` with stdin closed and stdout and stderr piped; returns its
/// command line (for messages) and the child. Panics, naming `what`, when
/// it cannot be started.
fn spawn(cmd: &mut Command, what: &str) -> (String, std::process::Child) {
    let shown = format!("{cmd:?}");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot run {shown}: {e}"));
    (shown, child)
}

/// A program left running while a test talks to it (a server, a receiver,
/// a client): its stdout and stderr lines are collected as they come;
/// killed when dropped.
pub struct Running {
    child: std::process::Child,
    pub shown: String,
    out: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    err: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Running {
    pub fn start(cmd: &mut Command, what: &str) -> Running {
        use std::io::BufRead;
        let (shown, mut child) = spawn(cmd, what);
        let collect = |r: Box<dyn Read + Send>| {
            let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let l = lines.clone();
            thread::spawn(move || {
                for line in std::io::BufReader::new(r).lines().map_while(Result::ok) {
                    l.lock().unwrap().push(line);
                }
            });
            lines
        };
        let out = collect(Box::new(child.stdout.take().unwrap()));
        let err = collect(Box::new(child.stderr.take().unwrap()));
        Running {
            child,
            shown,
            out,
            err,
        }
    }

    pub fn stdout(&self) -> Vec<String> {
        self.out.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> Vec<String> {
        self.err.lock().unwrap().clone()
    }

    /// Waits up to `limit` for a line (stdout, or stderr with `on_stderr`)
    /// that `pred` accepts; panics with everything printed so far.
    pub fn wait_line(
        &self,
        on_stderr: bool,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let lines = if on_stderr {
                self.stderr()
            } else {
                self.stdout()
            };
            if let Some(l) = lines.iter().find(|l| pred(l)) {
                return l.clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: no such line within {limit:?}\n--- stdout\n{}\n--- stderr\n{}",
                    self.shown,
                    self.stdout().join("\n"),
                    self.stderr().join("\n")
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
