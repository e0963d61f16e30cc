//! Every background task of a binary has an owner here, and is spawned
//! with what its death means. Spawned bare, a task that panics or gives up
//! vanishes and the process runs on without it. A death (a panic, or a
//! task meant to last until shutdown ending before it) is logged with the
//! task's name and counted (each binary's `*_task_exits_total{task}`,
//! through its [`Counted`] hooks), and then, as spawned:
//! - critical: shutdown is signalled, so the binary stops as on SIGTERM,
//!   and [`Tasks::died`] names the task: the process exits with an error
//!   and Kubernetes starts it again;
//! - restarting: the task is started again after a short pause;
//! - one-shot: nothing more, its work being redone elsewhere (a message
//!   it did not settle is redelivered by JetStream).

use std::{
    future::Future,
    sync::{Arc, OnceLock},
    time::Duration,
};

use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// How a binary counts its tasks: `supervised` when one starts (so its
/// series exists at 0), `died` at each death.
#[derive(Clone, Copy)]
pub struct Counted {
    pub supervised: fn(&'static str),
    pub died: fn(&'static str),
}

/// Pause before a restarting task starts again, so that one that dies at
/// once does not spin.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

/// When a task is meant to end.
#[derive(Clone, Copy)]
pub enum Ends {
    /// At shutdown: ending before it is a death.
    AtShutdown,
    /// On its own (its work done, its input closed): only a panic is a death.
    OnItsOwn,
}

/// The tasks of one process, or of one group of them (see `group`).
#[derive(Clone)]
pub struct Tasks {
    tracker: TaskTracker,
    shutdown: CancellationToken,
    counted: Counted,
    /// The first critical task that died, shared by every group.
    died: Arc<OnceLock<&'static str>>,
}

impl Tasks {
    pub fn new(shutdown: CancellationToken, counted: Counted) -> Self {
        Self {
            tracker: TaskTracker::new(),
            shutdown,
            counted,
            died: Arc::default(),
        }
    }

    /// A group of tasks waited for apart from these (a set of lanes), under
    /// the same shutdown.
    pub fn group(&self) -> Self {
        Self {
            tracker: TaskTracker::new(),
            ..self.clone()
        }
    }

    /// Runs a task the process cannot do without: if it dies, the process
    /// stops and exits with an error.
    pub fn spawn_critical(
        &self,
        name: &'static str,
        ends: Ends,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        (self.counted.supervised)(name);
        let this = self.clone();
        self.tracker.spawn(async move {
            if this.watch(name, task, ends).await {
                this.died.get_or_init(|| name);
                this.shutdown.cancel();
            }
        });
    }

    /// Runs the task `start` makes, meant to last until shutdown; if it
    /// dies, `start` makes another.
    pub fn spawn_restarting<T>(
        &self,
        name: &'static str,
        mut start: impl FnMut() -> T + Send + 'static,
    ) where
        T: Future<Output = ()> + Send + 'static,
    {
        (self.counted.supervised)(name);
        let this = self.clone();
        self.tracker.spawn(async move {
            while this.watch(name, start(), Ends::AtShutdown).await {
                tokio::select! {
                    () = tokio::time::sleep(RESTART_PAUSE) => {
                        tracing::info!(task = name, "restarting the task");
                    }
                    () = this.shutdown.cancelled() => return,
                }
            }
        });
    }

    /// Runs a task that does one thing and ends; if it dies, nothing more.
    pub fn spawn_once(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        (self.counted.supervised)(name);
        let this = self.clone();
        self.tracker.spawn(async move {
            this.watch(name, task, Ends::OnItsOwn).await;
        });
    }

    /// Waits until every task spawned here has ended.
    pub async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// The critical task whose death stopped the process, if one did.
    pub fn died(&self) -> Option<&'static str> {
        self.died.get().copied()
    }

    /// Runs `task` as a task of its own (so that a panic is caught) and
    /// says whether it died. A death is logged and counted.
    async fn watch(
        &self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
        ends: Ends,
    ) -> bool {
        let cause = match tokio::spawn(task).await {
            Ok(()) if matches!(ends, Ends::OnItsOwn) || self.shutdown.is_cancelled() => {
                return false
            }
            Ok(()) => "ended before shutdown".to_owned(),
            Err(e) => e.to_string(),
        };
        tracing::error!(task = name, %cause, "background task died");
        (self.counted.died)(name);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    const SOON: Duration = Duration::from_secs(5);
    const UNCOUNTED: Counted = Counted {
        supervised: |_| {},
        died: |_| {},
    };

    #[tokio::test]
    async fn a_critical_task_that_panics_or_ends_early_stops_the_process() {
        for panics in [true, false] {
            let shutdown = CancellationToken::new();
            let tasks = Tasks::new(shutdown.clone(), UNCOUNTED);
            tasks.spawn_critical("doomed", Ends::AtShutdown, async move {
                assert!(!panics, "boom");
            });
            tokio::time::timeout(SOON, shutdown.cancelled())
                .await
                .unwrap();
            tasks.wait().await;
            assert_eq!(tasks.died(), Some("doomed"));
        }
    }

    #[tokio::test]
    async fn a_task_that_ends_on_its_own_or_at_shutdown_is_no_death() {
        let shutdown = CancellationToken::new();
        let tasks = Tasks::new(shutdown.clone(), UNCOUNTED);
        tasks
            .group()
            .spawn_critical("lane", Ends::OnItsOwn, async {});
        tasks.spawn_once("once", async {});
        let until = shutdown.clone();
        tasks.spawn_critical("lasting", Ends::AtShutdown, async move {
            until.cancelled().await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!shutdown.is_cancelled());
        shutdown.cancel();
        tokio::time::timeout(SOON, tasks.wait()).await.unwrap();
        assert_eq!(tasks.died(), None);
    }

    #[tokio::test]
    async fn a_one_shot_task_that_panics_stops_nothing() {
        let shutdown = CancellationToken::new();
        let tasks = Tasks::new(shutdown.clone(), UNCOUNTED);
        tasks.spawn_once("once", async { panic!("boom") });
        tokio::time::timeout(SOON, tasks.wait()).await.unwrap();
        assert!(!shutdown.is_cancelled());
        assert_eq!(tasks.died(), None);
    }

    #[tokio::test]
    async fn a_restarting_task_is_started_again_until_shutdown() {
        let shutdown = CancellationToken::new();
        let tasks = Tasks::new(shutdown.clone(), UNCOUNTED);
        let starts = Arc::new(AtomicUsize::new(0));
        let (counted, until) = (Arc::clone(&starts), shutdown.clone());
        tasks.spawn_restarting("flaky", move || {
            let (start, until) = (counted.fetch_add(1, Ordering::SeqCst), until.clone());
            async move {
                assert!(start > 0, "the first start dies");
                until.cancelled().await
            }
        });
        tokio::time::timeout(SOON, async {
            while starts.load(Ordering::SeqCst) < 2 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
        assert!(!shutdown.is_cancelled());
        shutdown.cancel();
        tokio::time::timeout(SOON, tasks.wait()).await.unwrap();
        assert_eq!(tasks.died(), None);
    }
}
