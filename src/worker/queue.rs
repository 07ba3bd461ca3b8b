//! The model thread's queues as plain data: one FIFO per task, the rule for which task
//! runs next (oldest head first), and how a batch is taken (dynamic batching: up to a
//! count and a token budget). No threads, no clocks of its own: table-tested.

use std::collections::VecDeque;
use std::time::Instant;

use tokio::sync::oneshot;

use super::Done;
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
}

/// One queue per task, and whether they still take requests.
#[derive(Default)]
pub(super) struct Queues {
    by_task: [VecDeque<Pending>; Task::ALL.len()],
    pub closed: bool,
}

impl Queues {
    pub fn len(&self, task: Task) -> usize {
        self.by_task[task.index()].len()
    }

    pub fn push(&mut self, pending: Pending) {
        self.by_task[pending.job.task().index()].push_back(pending);
    }

    /// When the first request of `task` was queued.
    pub fn head(&self, task: Task) -> Option<Instant> {
        self.by_task[task.index()].front().map(|p| p.enqueued)
    }

    /// The task whose first request has waited longest.
    pub fn oldest(&self) -> Option<Task> {
        Task::ALL
            .into_iter()
            .filter_map(|t| self.head(t).map(|at| (t, at)))
            .min_by_key(|&(_, at)| at)
            .map(|(t, _)| t)
    }

    /// Take up to `max` requests and `max_tokens` estimated tokens from the front of
    /// `task`'s queue (always at least one, if there is one).
    pub fn take(&mut self, task: Task, max: usize, max_tokens: usize) -> Vec<Pending> {
        let queue = &mut self.by_task[task.index()];
        let mut batch: Vec<Pending> = Vec::new();
        let mut tokens = 0;
        while let Some(next) = queue.front() {
            if !batch.is_empty() && (batch.len() >= max || tokens + next.tokens > max_tokens) {
                break;
            }
            tokens += next.tokens;
            batch.extend(queue.pop_front());
        }
        batch
    }

    /// Every request still queued, of every task.
    pub fn take_all(&mut self) -> Vec<Pending> {
        self.by_task.iter_mut().flat_map(|q| q.drain(..)).collect()
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
        }
    }

    fn queue(tokens: &[usize]) -> Queues {
        let mut q = Queues::default();
        tokens.iter().for_each(|&t| q.push(item(t)));
        q
    }

    #[test]
    fn batches_respect_size_and_token_budget() {
        let e = Task::Entities;
        let mut q = queue(&[10, 10, 10, 10, 10]);
        assert_eq!(q.take(e, 3, 1000).len(), 3);
        assert_eq!(q.take(e, 3, 1000).len(), 2);
        let mut q = queue(&[10, 10, 10]);
        assert_eq!(q.take(e, 8, 25).len(), 2);
        // One request over the budget still runs, alone.
        let mut q = queue(&[100, 10]);
        assert_eq!(q.take(e, 8, 25).len(), 1);
        assert_eq!(q.take(e, 8, 25).len(), 1);
        assert!(q.take(e, 8, 25).is_empty());
    }

    #[test]
    fn the_oldest_head_runs_first() {
        let mut q = Queues::default();
        assert_eq!(q.oldest(), None);
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
        assert_eq!(q.oldest(), Some(Task::Summarize));
        assert_eq!(q.take_all().len(), 2);
        assert_eq!(q.oldest(), None);
    }
}
