//! A parallel DAG runner: runs up to `jobs` tasks at once, each as soon as the
//! tasks it waits for have succeeded. It knows nothing of elements: the
//! caller gives the edges, optional weights, and a function that runs one
//! node. Among ready nodes, the one with the longest weighted path to the
//! end of the DAG starts first (critical path first), ties in index order.

use std::collections::BinaryHeap;
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
#[derive(Default)]
pub struct Dag {
    /// `waits[i]`: the nodes that must succeed before node `i` may start.
    pub waits: Vec<Vec<usize>>,
    /// `weights[i]`: how long node `i` is expected to take, in any unit
    /// (milliseconds of an earlier run, say); missing or 0 counts as 1.
    pub weights: Vec<u64>,
    /// Start ready nodes in index order only, ignoring paths (for
    /// comparisons: `CAS_SCHEDULE=index`).
    pub index_order: bool,
}

impl Dag {
    /// A DAG of these edges, every node of weight 1.
    pub fn new(waits: Vec<Vec<usize>>) -> Dag {
        Dag {
            waits,
            weights: Vec::new(),
            index_order: false,
        }
    }

    /// Each node's priority: its weight plus the heaviest path through the
    /// nodes that wait on it, to the end of the DAG. One pass over the
    /// nodes in reverse topological order (iterative: no recursion on depth).
    pub fn critical_paths(&self, dependents: &[Vec<usize>]) -> Vec<u64> {
        let n = self.waits.len();
        let weight = |i: usize| self.weights.get(i).copied().unwrap_or(1).max(1);
        // Kahn's order over the edges "i waits on d", then backwards
        let mut missing: Vec<usize> = self.waits.iter().map(Vec::len).collect();
        let mut order: Vec<usize> = (0..n).filter(|&i| missing[i] == 0).collect();
        let mut at = 0;
        while at < order.len() {
            let i = order[at];
            at += 1;
            for &d in &dependents[i] {
                missing[d] -= 1;
                if missing[d] == 0 {
                    order.push(d);
                }
            }
        }
        let mut path = vec![0u64; n];
        for &i in order.iter().rev() {
            let below = dependents[i].iter().map(|&d| path[d]).max().unwrap_or(0);
            path[i] = weight(i).saturating_add(below);
        }
        path
    }
}

/// A ready node in the start queue: the longest path first, then the lowest index.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Ready(u64, std::cmp::Reverse<usize>);

/// The nodes by depth: a node is in the wave after the deepest of those it
/// waits on (`waits[i]`), each wave in index order. The nodes are taken in
/// topological order (each waits only on nodes before it); an edge to a
/// later node is ignored here, and that node's wait is the caller's to see.
pub fn waves(waits: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut depth = vec![0usize; waits.len()];
    let mut waves: Vec<Vec<usize>> = Vec::new();
    for (i, w) in waits.iter().enumerate() {
        let d = w
            .iter()
            .filter(|&&w| w < i)
            .map(|&w| depth[w] + 1)
            .max()
            .unwrap_or(0);
        depth[i] = d;
        if waves.len() <= d {
            waves.resize_with(d + 1, Vec::new);
        }
        waves[d].push(i);
    }
    waves
}

/// Runs every node of `dag`. `run(i)` is called on a worker thread once all of
/// `waits[i]` have ended `Ok`; it returns `Ok(value)` or `Err(())` for a
/// failure it already reported. Without `keep_going`, the first failure stops
/// new starts (running nodes finish). `stop` is polled: once true, nothing
/// new starts. Among the ready nodes, the one on the longest weighted path to
/// the end starts first ([`Dag::critical_paths`]); ties go in index order,
/// so a caller that sorts topologically gets a stable schedule.
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
    run_settling(
        dag,
        jobs,
        keep_going,
        stop,
        done,
        |batch| batch.iter().map(|_| None).collect(),
        run,
    )
}

/// [`run_with`], where the nodes that a run makes ready are first offered
/// together to `settle`, on the runner's own thread: a node it answers
/// (`Some(value)`, in the order of `batch`) ended well without being run,
/// and the nodes that releases are offered in turn; the others start as
/// usual. For work that is cheap to finish in bulk and often finished (a
/// build's steps whose results a rebuilt dependency left unchanged), it
/// spares each of those nodes a round trip through a worker thread. The
/// nodes ready at the start are not offered (the caller's `done` said
/// what it knew of them).
pub fn run_settling<T, S, F>(
    dag: &Dag,
    jobs: usize,
    keep_going: bool,
    stop: &AtomicBool,
    done: Vec<Option<T>>,
    settle: S,
    run: F,
) -> Vec<NodeEnd<T>>
where
    T: Send,
    S: Fn(&[usize]) -> Vec<Option<T>>,
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
    let priority = if dag.index_order {
        vec![0; n]
    } else {
        dag.critical_paths(&dependents)
    };
    let ready_of = |i: usize| Ready(priority[i], std::cmp::Reverse(i));
    let mut ready: BinaryHeap<Ready> = (0..n)
        .filter(|&i| ends[i].is_none() && missing[i] == 0)
        .map(ready_of)
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
                let Some(Ready(_, std::cmp::Reverse(i))) = ready.pop() else {
                    break;
                };
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
                // what this releases, offered to `settle` (and what each
                // node it answers releases, in turn) before any starts
                let mut fresh: Vec<usize> = Vec::new();
                for &d in &dependents[i] {
                    missing[d] -= 1;
                    if missing[d] == 0 {
                        fresh.push(d);
                    }
                }
                while !fresh.is_empty() {
                    // once stopping, nothing more is settled either
                    if halted || stop.load(Ordering::SeqCst) {
                        ready.extend(fresh.drain(..).map(ready_of));
                        break;
                    }
                    fresh.sort_unstable();
                    let mut answers = settle(&fresh).into_iter();
                    let mut released = Vec::new();
                    for &d in &fresh {
                        match answers.next() {
                            Some(Some(v)) => {
                                ends[d] = Some(NodeEnd::Ok(v));
                                for &e in &dependents[d] {
                                    missing[e] -= 1;
                                    if missing[e] == 0 {
                                        released.push(e);
                                    }
                                }
                            }
                            _ => ready.push(ready_of(d)),
                        }
                    }
                    fresh = released;
                }
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
    fn waves_put_each_node_after_the_deepest_it_waits_on() {
        // 0, 1 roots; 2 <- 0; 3 <- 2 and 1; 4 <- 1; 5 waits on a later node
        // (6), which is ignored: its wait is the caller's to see
        let waits = vec![
            vec![],
            vec![],
            vec![0],
            vec![2, 1],
            vec![1],
            vec![6],
            vec![],
        ];
        assert_eq!(
            waves(&waits),
            vec![vec![0, 1, 5, 6], vec![2, 4], vec![3]],
            "depth 0, 1, 2; each wave in index order"
        );
        assert!(waves(&[]).is_empty());
        // a chain as deep as a real distribution's, without recursion
        let chain: Vec<Vec<usize>> = (0..100_000)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect();
        assert_eq!(waves(&chain).len(), 100_000);
    }

    #[test]
    fn runs_in_dependency_order_and_skips_after_failure() {
        // 0 <- 1 <- 2, 3 independent, 4 waits on 3 which fails
        let dag = Dag::new(vec![vec![], vec![0], vec![1], vec![], vec![3]]);
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
        let dag = Dag::new(vec![vec![], vec![], vec![], vec![]]);
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
    fn nodes_settled_in_bulk_are_not_run_and_release_theirs_in_turn() {
        // 0 <- 1 <- 2 <- 3, and 4 <- 0: 0 runs; 1 and 4 are offered
        // together, 1 is settled, so 2 is offered next, and settled; 3 and
        // 4 are run
        let dag = Dag::new(vec![vec![], vec![0], vec![1], vec![2], vec![0]]);
        let stop = AtomicBool::new(false);
        let ran = Mutex::new(Vec::new());
        let offered = Mutex::new(Vec::new());
        let ends = run_settling(
            &dag,
            2,
            false,
            &stop,
            (0..5).map(|_| None).collect(),
            |batch: &[usize]| {
                offered.lock().unwrap().push(batch.to_vec());
                batch
                    .iter()
                    .map(|&i| (i == 1 || i == 2).then_some(i * 100))
                    .collect()
            },
            |i| {
                ran.lock().unwrap().push(i);
                Ok(i * 10)
            },
        );
        let mut ran = ran.into_inner().unwrap();
        ran.sort_unstable();
        assert_eq!(ran, vec![0, 3, 4]);
        let offered = offered.into_inner().unwrap();
        assert_eq!(offered[0], vec![1, 4]);
        assert!(offered.contains(&vec![2]) && offered.contains(&vec![3]));
        assert!(!offered.iter().flatten().any(|&i| i == 0), "{offered:?}");
        assert!(matches!(ends[1], NodeEnd::Ok(100)) && matches!(ends[2], NodeEnd::Ok(200)));
        assert!(matches!(ends[3], NodeEnd::Ok(30)) && matches!(ends[4], NodeEnd::Ok(40)));
    }

    #[test]
    fn once_stopped_nothing_more_is_settled_or_run() {
        // 0 <- 1 <- 2: the run stops while 0 runs
        let dag = Dag::new(vec![vec![], vec![0], vec![1]]);
        let stop = AtomicBool::new(false);
        let offered = Mutex::new(Vec::new());
        let ends = run_settling(
            &dag,
            1,
            false,
            &stop,
            (0..3).map(|_| None).collect(),
            |batch: &[usize]| {
                offered.lock().unwrap().extend_from_slice(batch);
                batch.iter().map(|&i| Some(i)).collect()
            },
            |i| {
                stop.store(true, Ordering::SeqCst);
                Ok(i)
            },
        );
        assert!(offered.into_inner().unwrap().is_empty());
        assert!(matches!(ends[0], NodeEnd::Ok(0)));
        assert!(matches!(ends[1], NodeEnd::Skipped) && matches!(ends[2], NodeEnd::Skipped));
    }

    #[test]
    fn nodes_done_beforehand_are_not_run_and_release_their_dependents() {
        let dag = Dag::new(vec![vec![], vec![0], vec![1]]);
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
        let dag = Dag::new(vec![vec![], vec![]]);
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

    #[test]
    fn the_longest_path_starts_first_not_the_lowest_index() {
        // 0 and 1 are ready; 1 heads a chain 1 <- 2 <- 3, 0 is alone
        let dag = Dag::new(vec![vec![], vec![], vec![1], vec![2]]);
        let stop = AtomicBool::new(false);
        let order = Mutex::new(Vec::new());
        run(&dag, 1, false, &stop, |i| {
            order.lock().unwrap().push(i);
            Ok(())
        });
        // then 0 and 3 are both one step from the end: index order
        assert_eq!(order.into_inner().unwrap(), vec![1, 2, 0, 3]);
        // weights count: a heavy lone node beats a light chain
        let mut dag = Dag::new(vec![vec![], vec![], vec![1], vec![2]]);
        dag.weights = vec![100, 1, 1, 1];
        let order = Mutex::new(Vec::new());
        run(&dag, 1, false, &stop, |i| {
            order.lock().unwrap().push(i);
            Ok(())
        });
        assert_eq!(order.into_inner().unwrap(), vec![0, 1, 2, 3]);
    }
}
