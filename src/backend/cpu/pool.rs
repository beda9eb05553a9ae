//! The kernels' threads: [`super::par::threads`] - 1 workers started once and kept, and
//! the caller of [`run`], all taking a call's jobs from one counter. Natively the workers
//! are threads of their own; in the page's threaded build (wasm32, feature `threads`)
//! each is a never-ending job on one of the Web Workers of the rayon pool the page
//! started (`initThreadPool`), and the caller is the engine's worker. A call
//! publishes its jobs, wakes the workers that sleep (spinning ones see the call), takes
//! jobs itself until none is left unstarted
//! and then waits for the ones other threads started. So when other work holds the cores
//! and a worker is not running, the caller does that worker's share instead of waiting
//! for it; and no thread is started per kernel (std::thread::scope started one per job,
//! about ten times a step).
//!
//! Which thread runs a job changes nothing: each job writes its own part of the output.
//! Several calls may be in flight at once (tests run in parallel; a job may itself call
//! [`run`]): each is a [`Call`] in the queue, and a worker takes jobs from the oldest.

use std::collections::VecDeque;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// Runs job `i` of a call; lifetime-erased (see the SAFETY note in [`run`]).
type Runner = *const (dyn Fn(usize) + Sync);

/// One call of [`run`]: its jobs are taken by index from `next`.
struct Call {
    runner: Runner,
    n_jobs: usize,
    /// The next job not yet taken (may run past `n_jobs`).
    next: AtomicUsize,
    /// Jobs finished.
    done: AtomicUsize,
    /// Whether any job panicked.
    panicked: AtomicBool,
    /// The caller sleeps here until `done` reaches `n_jobs`.
    finished: Mutex<()>,
    wake: Condvar,
    /// Whether the caller sleeps (or is about to) on `wake`: the last job wakes it only
    /// then (a wake-up is a system call; a spinning caller needs none).
    caller_sleeps: AtomicBool,
}

// SAFETY: `runner` points at a `Sync` closure that lives until every job of the call has
// finished (the caller waits for that before returning), and it is only dereferenced
// for a job index taken below `n_jobs`, that is, before then.
unsafe impl Send for Call {}
unsafe impl Sync for Call {}

impl Call {
    /// Takes and runs jobs until none is left unstarted; returns whether it ran any.
    fn work(&self) -> bool {
        let mut ran = false;
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.n_jobs {
                return ran;
            }
            ran = true;
            // SAFETY: job `i` < n_jobs is not finished, so the caller is still waiting in
            // `run` and the closure behind `runner` is alive.
            let runner = unsafe { &*self.runner };
            if catch_unwind(AssertUnwindSafe(|| runner(i))).is_err() {
                self.panicked.store(true, Ordering::Relaxed);
            }
            // SeqCst with the caller's `caller_sleeps` store and `done` load: either this
            // sees the caller asleep (or about to be: then the lock waits for its wait),
            // or the caller sees every job done and does not sleep.
            if self.done.fetch_add(1, Ordering::SeqCst) + 1 == self.n_jobs
                && self.caller_sleeps.load(Ordering::SeqCst)
            {
                let _g = self.finished.lock().unwrap_or_else(|e| e.into_inner());
                self.wake.notify_all();
            }
        }
    }

    fn exhausted(&self) -> bool {
        self.next.load(Ordering::Relaxed) >= self.n_jobs
    }

    fn all_done(&self) -> bool {
        self.done.load(Ordering::SeqCst) >= self.n_jobs
    }
}

/// The calls with jobs possibly left, oldest first, and the workers' bell.
struct Pool {
    queue: Mutex<VecDeque<Arc<Call>>>,
    /// Calls published so far (what an idle worker spins on before it sleeps).
    published: AtomicUsize,
    bell: Condvar,
    /// Workers asleep on `bell` (changed and read under the `queue` lock): a call rings
    /// the bell only when one is (a wake-up is a system call).
    sleepers: AtomicUsize,
}

/// The pool, its [`super::par::threads`] - 1 workers started on first use.
fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    static STARTED: std::sync::Once = std::sync::Once::new();
    let p = POOL.get_or_init(|| Pool {
        queue: Mutex::new(VecDeque::new()),
        published: AtomicUsize::new(0),
        bell: Condvar::new(),
        sleepers: AtomicUsize::new(0),
    });
    STARTED.call_once(|| {
        #[cfg(not(target_arch = "wasm32"))]
        for _ in 1..super::par::threads() {
            // A worker that cannot start leaves its share to the callers.
            let _ = std::thread::Builder::new()
                .name("cellvae-kernel".into())
                .spawn(move || worker(p));
        }
        // The page's threaded build: one worker loop on each Web Worker of the rayon pool
        // (which then runs nothing else; the kernels never call rayon).
        #[cfg(target_arch = "wasm32")]
        for _ in 0..rayon::current_num_threads() {
            rayon::spawn(move || worker(p));
        }
    });
    p
}

/// Spins of an idle worker (and of a caller waiting for the last jobs) before it
/// sleeps: a step's kernels come back to back, a few microseconds apart. (A spin is a
/// `pause` natively, tens of cycles; in WebAssembly a bare load, so more of them, and a
/// Web Worker's wake-up from `Atomics.wait` is slower than a thread's.)
#[cfg(not(target_arch = "wasm32"))]
const SPINS: usize = 2000;
#[cfg(target_arch = "wasm32")]
const SPINS: usize = 200_000;

fn worker(p: &'static Pool) {
    let mut seen = 0;
    loop {
        for _ in 0..SPINS {
            if p.published.load(Ordering::Acquire) != seen {
                break;
            }
            std::hint::spin_loop();
        }
        let call = {
            let mut q = p.queue.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                q.retain(|c| !c.exhausted());
                seen = p.published.load(Ordering::Acquire);
                if let Some(c) = q.front() {
                    break c.clone();
                }
                p.sleepers.fetch_add(1, Ordering::Relaxed);
                q = p.bell.wait(q).unwrap_or_else(|e| e.into_inner());
                p.sleepers.fetch_sub(1, Ordering::Relaxed);
            }
        };
        call.work();
    }
}

/// Runs every job (on the workers and this thread) and returns when all have finished;
/// a job's panic is raised again here after that.
pub fn run<F: FnOnce() + Send>(jobs: Vec<F>) {
    let n_jobs = jobs.len();
    if n_jobs == 0 {
        return;
    }
    if n_jobs == 1 || super::par::threads() == 1 {
        jobs.into_iter().for_each(|j| j());
        return;
    }
    let slots: Vec<Mutex<Option<F>>> = jobs.into_iter().map(|j| Mutex::new(Some(j))).collect();
    let run_one = |i: usize| {
        let job = slots[i].lock().ok().and_then(|mut s| s.take());
        if let Some(job) = job {
            job();
        }
    };
    let runner: &(dyn Fn(usize) + Sync) = &run_one;
    // SAFETY: only the lifetime is erased; `runner` stays alive until this function
    // returns, which it does only after every job has finished (below), and the
    // workers dereference it only for unfinished jobs (`Call::work`).
    let runner: Runner = unsafe { std::mem::transmute::<_, Runner>(runner) };
    let call = Arc::new(Call {
        runner,
        n_jobs,
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        panicked: AtomicBool::new(false),
        finished: Mutex::new(()),
        wake: Condvar::new(),
        caller_sleeps: AtomicBool::new(false),
    });
    let p = pool();
    let ring = {
        let mut q = p.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.push_back(call.clone());
        p.published.fetch_add(1, Ordering::Release);
        // Under the lock: a worker that found the queue empty counted itself before
        // releasing the lock in its wait.
        p.sleepers.load(Ordering::Relaxed) > 0
    };
    if ring {
        p.bell.notify_all();
    }
    call.work();
    if !call.all_done() {
        for _ in 0..SPINS {
            if call.all_done() {
                break;
            }
            std::hint::spin_loop();
        }
        let mut g = call.finished.lock().unwrap_or_else(|e| e.into_inner());
        call.caller_sleeps.store(true, Ordering::SeqCst);
        while !call.all_done() {
            g = call.wake.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }
    if call.panicked.load(Ordering::Relaxed) {
        resume_unwind(Box::new("a kernel job panicked"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_runs_once_also_from_many_callers() {
        let total = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for round in 0..200 {
                        let mut out = [0usize; 7];
                        let jobs: Vec<_> = out
                            .iter_mut()
                            .enumerate()
                            .map(|(i, o)| move || *o = i * round)
                            .collect();
                        run(jobs);
                        assert!(out.iter().enumerate().all(|(i, &o)| o == i * round));
                        total.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 800);
    }

    /// Calls further apart than the workers spin (they sleep: the bell must ring) with
    /// jobs longer than the caller spins (it sleeps: the last job must wake it), in a
    /// thread watched for a lost wake-up.
    #[test]
    fn sleeping_workers_and_callers_are_woken() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for round in 0..30u64 {
                std::thread::sleep(std::time::Duration::from_millis(3));
                let mut out = [0u64; 3];
                let jobs: Vec<_> = out
                    .iter_mut()
                    .enumerate()
                    .map(|(i, o)| {
                        move || {
                            let ms = (round + i as u64) % 3 * 4;
                            std::thread::sleep(std::time::Duration::from_millis(ms));
                            *o = round + i as u64;
                        }
                    })
                    .collect();
                run(jobs);
                assert_eq!(out, [round, round + 1, round + 2]);
            }
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_secs(60)).is_ok(),
            "a call never returned (a lost wake-up), or a round failed"
        );
    }

    #[test]
    fn nested_calls_finish() {
        let mut out = [0usize; 4];
        let jobs: Vec<_> = out
            .iter_mut()
            .map(|o| {
                move || {
                    let mut inner = [0usize; 3];
                    let js: Vec<_> = inner.iter_mut().map(|x| move || *x = 1).collect();
                    run(js);
                    *o = inner.iter().sum();
                }
            })
            .collect();
        run(jobs);
        assert_eq!(out, [3, 3, 3, 3]);
    }

    #[test]
    fn a_panicking_job_panics_the_caller_after_the_others() {
        let mut out = [0u8; 3];
        let r = catch_unwind(AssertUnwindSafe(|| {
            let jobs: Vec<Box<dyn FnOnce() + Send>> = out
                .iter_mut()
                .enumerate()
                .map(|(i, o)| -> Box<dyn FnOnce() + Send> {
                    Box::new(move || {
                        assert!(i != 1, "job 1 fails");
                        *o = 1;
                    })
                })
                .collect();
            run(jobs);
        }));
        assert!(r.is_err());
        assert_eq!((out[0], out[2]), (1, 1));
    }
}
