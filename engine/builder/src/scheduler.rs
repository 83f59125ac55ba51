//! A parallel DAG runner: runs up to `jobs` tasks at once, each as soon as the
//! tasks it waits for have succeeded. It knows nothing of elements: the
//! caller gives the edges and a function that runs one node.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;

/// How one node ended.
#[derive(Debug)]
pub enum NodeEnd<T> {
    Ok(T),
    Failed,
    /// Not run because something it waits for failed, or the run stopped.
    Skipped,
}

/// What the runner needs to know.
pub struct Dag {
    /// `waits[i]`: the nodes that must succeed before node `i` may start.
    pub waits: Vec<Vec<usize>>,
}

/// Runs every node of `dag`. `run(i)` is called on a worker thread once all of
/// `waits[i]` have ended `Ok`; it returns `Ok(value)` or `Err(())` for a
/// failure it already reported. Without `keep_going`, the first failure stops
/// new starts (running nodes finish). `stop` is polled: once true, nothing
/// new starts. Nodes are started in index order among the ready ones, so a
/// caller that sorts topologically gets a stable schedule.
pub fn run<T, F>(
    dag: &Dag,
    jobs: usize,
    keep_going: bool,
    stop: &AtomicBool,
    run: F,
) -> Vec<NodeEnd<T>>
where
    T: Send,
    F: Fn(usize) -> Result<T, ()> + Sync,
{
    run_with(
        dag,
        jobs,
        keep_going,
        stop,
        (0..dag.waits.len()).map(|_| None).collect(),
        run,
    )
}

/// [`run`], where `done[i] = Some(value)` marks node `i` as already ended
/// well (it is not run; its dependents may start at once). Nodes done
/// beforehand never cross a thread, which keeps no-op builds cheap.
pub fn run_with<T, F>(
    dag: &Dag,
    jobs: usize,
    keep_going: bool,
    stop: &AtomicBool,
    done: Vec<Option<T>>,
    run: F,
) -> Vec<NodeEnd<T>>
where
    T: Send,
    F: Fn(usize) -> Result<T, ()> + Sync,
{
    let n = dag.waits.len();
    let mut ends: Vec<Option<NodeEnd<T>>> = (0..n).map(|_| None).collect();
    let mut missing: Vec<usize> = dag.waits.iter().map(std::vec::Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, w) in dag.waits.iter().enumerate() {
        for &d in w {
            dependents[d].push(i);
        }
    }
    for (i, value) in done.into_iter().enumerate() {
        if let Some(v) = value {
            ends[i] = Some(NodeEnd::Ok(v));
            for &d in &dependents[i] {
                missing[d] -= 1;
            }
        }
    }
    let mut ready: VecDeque<usize> = (0..n)
        .filter(|&i| ends[i].is_none() && missing[i] == 0)
        .collect();
    if ready.is_empty() {
        return ends
            .into_iter()
            .map(|e| e.unwrap_or(NodeEnd::Skipped))
            .collect();
    }
    let jobs = jobs.max(1);
    let (task_tx, task_rx) = mpsc::channel::<usize>();
    let task_rx = Mutex::new(task_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, Result<T, ()>)>();
    let run = &run;
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(n.max(1)) {
            let done_tx = done_tx.clone();
            let task_rx = &task_rx;
            scope.spawn(move || loop {
                let next = task_rx.lock().map(|rx| rx.recv());
                let Ok(Ok(i)) = next else { break };
                let r = run(i);
                if done_tx.send((i, r)).is_err() {
                    break;
                }
            });
        }
        drop(done_tx);
        let mut running = 0usize;
        let mut halted = false;
        loop {
            if stop.load(Ordering::SeqCst) {
                halted = true;
            }
            while !halted && running < jobs {
                let Some(i) = ready.pop_front() else { break };
                running += 1;
                let _ = task_tx.send(i);
            }
            if running == 0 {
                break;
            }
            let Ok((i, r)) = done_rx.recv() else { break };
            running -= 1;
            if let Ok(v) = r {
                ends[i] = Some(NodeEnd::Ok(v));
                for &d in &dependents[i] {
                    missing[d] -= 1;
                    if missing[d] == 0 {
                        ready.push_back(d);
                    }
                }
                // keep index order among ready nodes
                ready.make_contiguous().sort_unstable();
            } else {
                ends[i] = Some(NodeEnd::Failed);
                if !keep_going {
                    halted = true;
                }
            }
        }
        drop(task_tx);
    });
    ends.into_iter()
        .map(|e| e.unwrap_or(NodeEnd::Skipped))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    #[test]
    fn runs_in_dependency_order_and_skips_after_failure() {
        // 0 <- 1 <- 2, 3 independent, 4 waits on 3 which fails
        let dag = Dag {
            waits: vec![vec![], vec![0], vec![1], vec![], vec![3]],
        };
        let order = Mutex::new(Vec::new());
        let stop = AtomicBool::new(false);
        let ends = run(&dag, 2, true, &stop, |i| {
            order.lock().unwrap().push(i);
            if i == 3 {
                Err(())
            } else {
                Ok(i * 10)
            }
        });
        let order = order.into_inner().unwrap();
        let pos = |x| order.iter().position(|&y| y == x).unwrap();
        assert!(pos(0) < pos(1) && pos(1) < pos(2));
        assert!(matches!(ends[2], NodeEnd::Ok(20)));
        assert!(matches!(ends[3], NodeEnd::Failed));
        assert!(matches!(ends[4], NodeEnd::Skipped));
        assert!(!order.contains(&4));
    }

    #[test]
    fn without_keep_going_nothing_new_starts_after_a_failure() {
        let dag = Dag {
            waits: vec![vec![], vec![], vec![], vec![]],
        };
        let stop = AtomicBool::new(false);
        let count = AtomicUsize::new(0);
        let ends = run(&dag, 1, false, &stop, |i| {
            count.fetch_add(1, Ordering::SeqCst);
            if i == 0 {
                Err(())
            } else {
                Ok(())
            }
        });
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert!(matches!(ends[1], NodeEnd::Skipped));
    }

    #[test]
    fn nodes_done_beforehand_are_not_run_and_release_their_dependents() {
        let dag = Dag {
            waits: vec![vec![], vec![0], vec![1]],
        };
        let stop = AtomicBool::new(false);
        let ran = Mutex::new(Vec::new());
        let ends = run_with(&dag, 2, false, &stop, vec![Some(0), Some(1), None], |i| {
            ran.lock().unwrap().push(i);
            Ok(i * 10)
        });
        assert_eq!(ran.into_inner().unwrap(), vec![2]);
        assert!(matches!(ends[0], NodeEnd::Ok(0)) && matches!(ends[2], NodeEnd::Ok(20)));
        // Everything done: no thread at all.
        let ends = run_with(
            &dag,
            2,
            false,
            &stop,
            vec![Some(1), Some(2), Some(3)],
            |_| -> Result<usize, ()> { panic!("ran") },
        );
        assert!(ends.iter().all(|e| matches!(e, NodeEnd::Ok(_))));
    }

    #[test]
    fn independent_nodes_overlap() {
        let dag = Dag {
            waits: vec![vec![], vec![]],
        };
        let stop = AtomicBool::new(false);
        let spans = Mutex::new(Vec::new());
        run(&dag, 2, false, &stop, |_| {
            let a = Instant::now();
            std::thread::sleep(Duration::from_millis(200));
            spans.lock().unwrap().push((a, Instant::now()));
            Ok(())
        });
        let s = spans.into_inner().unwrap();
        assert!(
            s[0].0 < s[1].1 && s[1].0 < s[0].1,
            "the two runs did not overlap"
        );
    }
}
