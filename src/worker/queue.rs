//! The model thread's queues as plain data: one FIFO per task and priority lane, the rule
//! for which queue runs next (interactive first, the oldest head first within a lane),
//! and how a batch is taken (dynamic batching: up to a count and a token budget, on one
//! set of models). No threads, no clocks of its own: table-tested.

use std::collections::VecDeque;
use std::time::Instant;

use tokio::sync::oneshot;

use super::{Done, Lane};
use crate::engine::{ModelRef, Pick, Role};
use crate::error::Result;
use crate::tasks::{Job, Output, Task};

/// A request waiting for the model.
pub(super) struct Pending {
    pub job: Job,
    pub reply: oneshot::Sender<Result<Done<Output>>>,
    pub enqueued: Instant,
    pub deadline: Option<Instant>,
    /// Estimated input tokens, for the batch budget.
    pub tokens: usize,
    /// The model versions it runs on, fixed when it was admitted.
    pub pick: Pick,
    /// Its priority lane.
    pub lane: Lane,
}

/// One FIFO per task and lane, and whether they still take requests.
#[derive(Default)]
pub(super) struct Queues {
    by_lane: [[VecDeque<Pending>; Task::ALL.len()]; Lane::ALL.len()],
    pub closed: bool,
}

impl Queues {
    pub fn len(&self, task: Task, lane: Lane) -> usize {
        self.by_lane[lane.index()][task.index()].len()
    }

    pub fn push(&mut self, pending: Pending) {
        self.by_lane[pending.lane.index()][pending.job.task().index()].push_back(pending);
    }

    /// When the first request of `task` in `lane` was queued.
    pub fn head(&self, task: Task, lane: Lane) -> Option<Instant> {
        self.by_lane[lane.index()][task.index()]
            .front()
            .map(|p| p.enqueued)
    }

    /// The task of `lane` whose first request has waited longest.
    fn oldest_in(&self, lane: Lane) -> Option<Task> {
        Task::ALL
            .into_iter()
            .filter_map(|t| self.head(t, lane).map(|at| (t, at)))
            .min_by_key(|&(_, at)| at)
            .map(|(t, _)| t)
    }

    /// The queue to serve next: interactive work first, unless it is the batch lane's turn
    /// (`batch_turn`) and batch work waits; either lane when the other is empty.
    pub fn next(&self, batch_turn: bool) -> Option<(Task, Lane)> {
        let interactive = self.oldest_in(Lane::Interactive);
        let batch = self.oldest_in(Lane::Batch);
        match (interactive, batch) {
            (Some(_), Some(b)) if batch_turn => Some((b, Lane::Batch)),
            (Some(i), _) => Some((i, Lane::Interactive)),
            (None, Some(b)) => Some((b, Lane::Batch)),
            (None, None) => None,
        }
    }

    /// Is batch work waiting?
    pub fn batch_waiting(&self) -> bool {
        self.oldest_in(Lane::Batch).is_some()
    }

    /// Take up to `max` requests and `max_tokens` estimated tokens of `task` in `lane`
    /// that run on the same models as the first one (always at least one, if there is
    /// one); requests on other models keep their places.
    pub fn take(&mut self, task: Task, lane: Lane, max: usize, max_tokens: usize) -> Vec<Pending> {
        let queue = &mut self.by_lane[lane.index()][task.index()];
        let Some(pick) = queue.front().map(|p| p.pick.clone()) else {
            return Vec::new();
        };
        let mut batch: Vec<Pending> = Vec::new();
        let mut rest = VecDeque::with_capacity(queue.len());
        let mut tokens = 0;
        while let Some(next) = queue.pop_front() {
            let full =
                !batch.is_empty() && (batch.len() >= max || tokens + next.tokens > max_tokens);
            if full {
                rest.push_back(next);
                break;
            }
            if next.pick == pick {
                tokens += next.tokens;
                batch.push(next);
            } else {
                rest.push_back(next);
            }
        }
        rest.append(queue);
        *queue = rest;
        batch
    }

    /// Is any queued request pinned to `model` of `role`?
    pub fn pins(&self, role: Role, model: &ModelRef) -> bool {
        self.by_lane
            .iter()
            .flatten()
            .flatten()
            .any(|p| p.pick.0.get(&role) == Some(model))
    }

    /// Every request still queued, of every task and lane.
    pub fn take_all(&mut self) -> Vec<Pending> {
        self.by_lane
            .iter_mut()
            .flatten()
            .flat_map(|q| q.drain(..))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::EntitiesJob;

    fn item(tokens: usize) -> Pending {
        let (reply, _) = oneshot::channel();
        Pending {
            job: Job::Entities(EntitiesJob {
                text: "t".into(),
                min_score: 0.0,
                labels: vec![],
            }),
            reply,
            enqueued: Instant::now(),
            deadline: None,
            tokens,
            pick: Pick::default(),
            lane: Lane::Interactive,
        }
    }

    fn on(model: &str, lane: Lane) -> Pending {
        let mut p = item(1);
        p.pick = Pick(
            [(
                Role::Ner,
                ModelRef {
                    name: model.into(),
                    version: "v".into(),
                },
            )]
            .into(),
        );
        p.lane = lane;
        p
    }

    fn queue(tokens: &[usize]) -> Queues {
        let mut q = Queues::default();
        tokens.iter().for_each(|&t| q.push(item(t)));
        q
    }

    #[test]
    fn batches_respect_size_and_token_budget() {
        let (e, i) = (Task::Entities, Lane::Interactive);
        let mut q = queue(&[10, 10, 10, 10, 10]);
        assert_eq!(q.take(e, i, 3, 1000).len(), 3);
        assert_eq!(q.take(e, i, 3, 1000).len(), 2);
        let mut q = queue(&[10, 10, 10]);
        assert_eq!(q.take(e, i, 8, 25).len(), 2);
        // One request over the budget still runs, alone.
        let mut q = queue(&[100, 10]);
        assert_eq!(q.take(e, i, 8, 25).len(), 1);
        assert_eq!(q.take(e, i, 8, 25).len(), 1);
        assert!(q.take(e, i, 8, 25).is_empty());
    }

    #[test]
    fn batches_never_mix_models_and_the_others_keep_their_places() {
        let (e, i) = (Task::Entities, Lane::Interactive);
        let mut q = Queues::default();
        for model in ["a", "b", "a", "b", "a"] {
            q.push(on(model, i));
        }
        let names = |batch: Vec<Pending>| -> Vec<String> {
            batch
                .iter()
                .map(|p| p.pick.0[&Role::Ner].name.clone())
                .collect()
        };
        assert_eq!(names(q.take(e, i, 2, 1000)), ["a", "a"]);
        let pinned = |name: &str| ModelRef {
            name: name.into(),
            version: "v".into(),
        };
        assert!(q.pins(Role::Ner, &pinned("a")) && q.pins(Role::Ner, &pinned("b")));
        assert_eq!(names(q.take(e, i, 8, 1000)), ["b", "b"]);
        assert_eq!(names(q.take(e, i, 8, 1000)), ["a"]);
        assert!(!q.pins(Role::Ner, &pinned("a")));
    }

    #[test]
    fn interactive_work_goes_first_except_on_the_batch_lanes_turn() {
        let mut q = Queues::default();
        assert_eq!(q.next(false), None);
        q.push(on("a", Lane::Batch));
        assert_eq!(q.next(false), Some((Task::Entities, Lane::Batch)));
        q.push(on("a", Lane::Interactive));
        assert_eq!(q.next(false), Some((Task::Entities, Lane::Interactive)));
        assert_eq!(q.next(true), Some((Task::Entities, Lane::Batch)));
        assert!(q.batch_waiting());
        q.take(Task::Entities, Lane::Batch, 8, 1000);
        assert_eq!(q.next(true), Some((Task::Entities, Lane::Interactive)));
    }

    #[test]
    fn the_oldest_head_runs_first() {
        let mut q = Queues::default();
        assert_eq!(q.next(false), None);
        let first = item(1);
        let mut second = item(1);
        second.job = Job::Summarize(crate::tasks::SummarizeJob {
            text: "t".into(),
            mode: crate::tasks::Mode::Extractive,
            max_key_points: 1,
            generation: Default::default(),
        });
        second.enqueued = first.enqueued - std::time::Duration::from_millis(1);
        q.push(first);
        q.push(second);
        assert_eq!(q.next(false), Some((Task::Summarize, Lane::Interactive)));
        assert_eq!(q.take_all().len(), 2);
        assert_eq!(q.next(false), None);
    }
}
