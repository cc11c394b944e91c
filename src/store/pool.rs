//! A bounded pool for the CPU-heavy end of a call (Opus encoding in
//! [`super::Store::finish`]), so that many calls hanging up at once queue
//! for a few workers instead of taking every blocking thread and core.
//!
//! tokio's blocking pool is sized for threads that wait on I/O (512 by
//! default), not for CPU work, so the bound is a [`Semaphore`] with one
//! permit per worker around `spawn_blocking`: at most `workers` jobs run
//! at once, the rest wait for a permit without holding a thread. Calls
//! themselves never wait on it: a job is submitted after hang-up.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::error::StoreError;

/// Runs blocking jobs on tokio's blocking threads, at most `workers` at
/// once. Cheap to clone; clones share the bound.
#[derive(Debug, Clone)]
pub struct EncodePool {
    permits: Arc<Semaphore>,
    workers: usize,
}

impl EncodePool {
    /// A pool running at most `workers` jobs at once (at least one).
    pub fn new(workers: usize) -> Self {
        let workers = workers.max(1);
        EncodePool {
            permits: Arc::new(Semaphore::new(workers)),
            workers,
        }
    }

    /// How many jobs may run at once.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Waits for a free worker, runs `job` on a blocking thread and returns
    /// its result. If the returned future is dropped while waiting, `job`
    /// never runs (and whatever it owns is dropped: a [`super::Recording`]
    /// left so is recovered at the next start-up); once started, it runs to
    /// the end. [`StoreError::Task`] when the job panicked or the runtime
    /// is shutting down.
    pub async fn run<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_than_workers_jobs_run_at_once() {
        let pool = EncodePool::new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let jobs = (0..6).map(|i| {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(40));
                    running.fetch_sub(1, Ordering::SeqCst);
                    i * 10
                })
                .await
            })
        });
        let mut results = Vec::new();
        for job in jobs.collect::<Vec<_>>() {
            results.push(job.await.unwrap().unwrap());
        }
        assert_eq!(results, vec![0, 10, 20, 30, 40, 50]);
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_frees_its_worker() {
        let pool = EncodePool::new(0);
        assert_eq!(pool.workers(), 1);
        let failed = pool.run(|| -> u32 { panic!("job failed") }).await;
        assert!(matches!(failed, Err(StoreError::Task(_))), "{failed:?}");
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
    }
}
