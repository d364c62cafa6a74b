//! Where C callbacks run: a small pool of library threads shared by every
//! client, each client with its own queue so that its callbacks run one at
//! a time and in order, whatever thread picks them up. Thousands of clients
//! need no more threads than the pool has.

use once_cell::sync::Lazy;
use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;

pub type Job = Box<dyn FnOnce() + Send>;

/// Jobs one pool thread runs for a client before giving others a turn.
const BATCH: usize = 64;
const POOL_THREADS: usize = 2;

thread_local! {
    /// True on the pool's own threads: they may run queued callbacks inline
    /// (a library thread), app threads may not.
    static IS_POOL_THREAD: Cell<bool> = const { Cell::new(false) };
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    /// Handed to the pool, waiting for a thread.
    queued: bool,
    /// The thread running this client's jobs now, if any.
    running: Option<ThreadId>,
    /// After close, nothing new is run.
    closed: bool,
}

/// One client's ordered callback queue.
#[derive(Default)]
pub struct Dispatcher {
    state: Mutex<State>,
    /// Signalled whenever the queue becomes idle.
    idle: Condvar,
}

/// The clients' queues waiting for a pool thread, and who is asleep.
#[derive(Default)]
struct Ready {
    queues: VecDeque<Arc<Dispatcher>>,
    /// Pool threads waiting on `Pool::wake`.
    sleeping: usize,
    /// Wake-ups sent that no sleeping thread has taken yet. A queue handed
    /// over while every sleeper already has one coming (or none sleeps)
    /// wakes nobody: a thread that is awake looks at `queues` before it
    /// sleeps, so each wake-up of one thread serves every queue handed
    /// over meanwhile.
    woken: usize,
}

struct Pool {
    ready: Mutex<Ready>,
    wake: Condvar,
}

static POOL: Lazy<Pool> = Lazy::new(|| {
    for i in 0..POOL_THREADS {
        std::thread::Builder::new()
            .name(format!("nim-signaling-cb-{i}"))
            .spawn(|| {
                IS_POOL_THREAD.with(|c| c.set(true));
                POOL.serve();
            })
            .expect("spawn callback thread");
    }
    Pool {
        ready: Mutex::new(Ready::default()),
        wake: Condvar::new(),
    }
});

impl Pool {
    /// A pool thread: runs the queues handed over, sleeps when there are
    /// none.
    fn serve(&self) -> ! {
        let mut r = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(d) = r.queues.pop_front() {
                drop(r);
                d.run(Some(BATCH));
                r = self.ready.lock().unwrap_or_else(|e| e.into_inner());
                continue;
            }
            r.sleeping += 1;
            r = self.wake.wait(r).unwrap_or_else(|e| e.into_inner());
            r.sleeping -= 1;
            // A spurious wake-up may take another's: harmless, that one
            // then finds the queue as it is.
            r.woken = r.woken.saturating_sub(1);
        }
    }

    fn hand_over(&self, d: Arc<Dispatcher>) {
        let mut r = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        r.queues.push_back(d);
        let wake = r.sleeping > r.woken;
        if wake {
            r.woken += 1;
        }
        drop(r);
        if wake {
            self.wake.notify_one();
        }
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Dispatcher {
    pub fn new() -> Arc<Dispatcher> {
        Arc::new(Dispatcher::default())
    }

    /// Puts this queue in line for a pool thread (the caller has set `queued`).
    fn hand_to_pool(self: &Arc<Self>) {
        POOL.hand_over(self.clone());
    }

    /// Queues a job; it runs after every job queued before it.
    pub fn push(self: &Arc<Self>, job: Job) {
        let mut s = lock(&self.state);
        if s.closed {
            return;
        }
        s.jobs.push_back(job);
        if !s.queued && s.running.is_none() {
            s.queued = true;
            drop(s);
            self.hand_to_pool();
        }
    }

    /// Runs queued jobs on this thread: up to `budget` (then requeues
    /// itself), or all of them when None. Jobs are run without the lock.
    fn run(self: &Arc<Self>, budget: Option<usize>) {
        let me = std::thread::current().id();
        let nested;
        {
            let mut s = lock(&self.state);
            if budget.is_some() {
                s.queued = false;
            }
            match s.running {
                Some(t) if t == me => nested = true,
                Some(_) => return, // another thread is on it and will drain
                None => {
                    s.running = Some(me);
                    nested = false;
                }
            }
        }
        let mut done = 0usize;
        loop {
            let job = {
                let mut s = lock(&self.state);
                let over_budget = budget.map(|b| done >= b).unwrap_or(false);
                match s.jobs.pop_front() {
                    Some(j) if !over_budget => j,
                    other => {
                        if let Some(j) = other {
                            s.jobs.push_front(j);
                        }
                        if !nested {
                            s.running = None;
                            if !s.jobs.is_empty() && !s.queued {
                                s.queued = true;
                                drop(s);
                                self.hand_to_pool();
                                return;
                            }
                            self.idle.notify_all();
                        }
                        return;
                    }
                }
            };
            // A panic in our glue must not kill the pool thread; C code
            // cannot unwind into here.
            let _ = catch_unwind(AssertUnwindSafe(job));
            done += 1;
        }
    }

    /// Runs or waits for every queued job, then closes the queue: after
    /// this returns no job of this dispatcher runs. On a pool thread the
    /// remaining jobs run inline (also when called from one of this
    /// queue's own jobs); on an app thread it waits for the pool.
    pub fn drain_and_close(self: &Arc<Self>) {
        if IS_POOL_THREAD.with(|c| c.get()) {
            loop {
                self.run(None);
                let s = lock(&self.state);
                let me = std::thread::current().id();
                if s.jobs.is_empty() && (s.running.is_none() || s.running == Some(me)) {
                    break;
                }
                // Another pool thread is running it: wait for it.
                let _s = self
                    .idle
                    .wait_while(s, |s| s.running.is_some() && s.running != Some(me));
            }
        } else {
            let s = lock(&self.state);
            let _s = self
                .idle
                .wait_while(s, |s| !s.jobs.is_empty() || s.running.is_some())
                .unwrap_or_else(|e| e.into_inner());
        }
        let mut s = lock(&self.state);
        s.closed = true;
        s.jobs.clear();
    }
}
