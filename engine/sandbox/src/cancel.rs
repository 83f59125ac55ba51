//! Stopping running sandboxes from another thread: the scheduler shares one
//! [`Cancel`] among all its jobs and calls [`Cancel::cancel`] on SIGINT.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A cancellation token. Clones share the same state.
#[derive(Clone, Debug, Default)]
pub struct Cancel {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    cancelled: bool,
    /// bwrap pid → (its own process group?, killed by us?)
    running: BTreeMap<i32, Running>,
}

#[derive(Clone, Copy, Debug)]
struct Running {
    group: bool,
    killed: bool,
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Kills every sandbox running under this token (SIGKILL to bwrap and
    /// its process group; `--die-with-parent` takes the sandbox's whole
    /// process tree with it) and makes later [`crate::run`] calls return
    /// at once as cancelled.
    pub fn cancel(&self) {
        let mut st = self.lock();
        st.cancelled = true;
        for (pid, r) in &mut st.running {
            kill(*pid, r.group);
            r.killed = true;
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.lock().cancelled
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a started sandbox; kills it at once if already cancelled.
    /// The pid must not have been reaped yet (so it cannot be reused).
    pub(crate) fn register(&self, pid: i32, group: bool) {
        let mut st = self.lock();
        let killed = st.cancelled;
        if killed {
            kill(pid, group);
        }
        st.running.insert(pid, Running { group, killed });
    }

    /// Forgets a sandbox that has exited (before it is reaped); tells
    /// whether this token killed it.
    pub(crate) fn unregister(&self, pid: i32) -> bool {
        self.lock().running.remove(&pid).is_some_and(|r| r.killed)
    }
}

/// SIGKILL to `pid`, or to its process group when it leads one.
pub(crate) fn kill(pid: i32, group: bool) {
    let target = if group { -pid } else { pid };
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(target, libc::SIGKILL);
    }
}
