//! What gist does with an article, in gist's own types. Each task is one module that owns
//! its job (a validated request), its result and its pipeline, composed from the pure text
//! functions and the [`Engine`]. The gRPC services, the CLI and the evaluations all call
//! exactly these; the model thread runs them through [`run`], the one place with an arm
//! per task.
//!
//! A new task: a module here, a variant in [`Task`], [`Job`] and [`Output`] (and its arm
//! in [`run`] and the `impl_task!` line), its service in `server::rpc` (see the README,
//! "Architecture", for the whole list of 7 files).

pub mod analyze;
pub mod entities;
pub mod summarize;

pub use analyze::{Analysis, AnalyzeJob, SummaryEntity};
pub use entities::{Entities, EntitiesJob};
pub use summarize::{KeyPoint, Mode, SummarizeJob, Summary};

use crate::engine::{Engine, EngineInfo, Role};
use crate::error::{Error, Result};

/// The tasks. Each has its own queue on the model thread and its own gRPC service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// Key points or an abstractive summary.
    Summarize,
    /// Named entities.
    Entities,
    /// Both, with the summary checked against the source.
    Analyze,
}

impl Task {
    /// Every task, in queue order.
    pub const ALL: [Task; 3] = [Task::Summarize, Task::Entities, Task::Analyze];

    /// Name used for its queue in messages and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Task::Summarize => "summarize",
            Task::Entities => "entities",
            Task::Analyze => "analyze",
        }
    }

    /// Every task's queue name, for [`crate::metrics::Metrics::new`].
    pub fn names() -> Vec<&'static str> {
        Task::ALL.iter().map(|t| t.name()).collect()
    }

    /// Position in [`Task::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Can the loaded models do this task? (Health reports the task's service SERVING.)
    pub fn serves(self, info: &EngineInfo) -> bool {
        let summarizes = info.has(Role::Encoder) || info.has(Role::Summarizer);
        match self {
            Task::Summarize => summarizes,
            Task::Entities => info.has(Role::Ner),
            Task::Analyze => summarizes && info.has(Role::Ner),
        }
    }

    /// The roles of the models this task may read (a request may name one of those).
    pub fn reads(self) -> &'static [Role] {
        match self {
            Task::Summarize => &[Role::Encoder, Role::Summarizer],
            Task::Entities => &[Role::Ner],
            Task::Analyze => &[Role::Encoder, Role::Summarizer, Role::Ner],
        }
    }

    /// Refuse a request at once when a model its task always needs is missing.
    ///
    /// # Errors
    /// [`Error::ModelMissing`].
    pub fn admit(self, info: &EngineInfo) -> Result<()> {
        match self {
            // Which model a summary needs depends on its mode: the task itself says.
            Task::Summarize => Ok(()),
            Task::Entities | Task::Analyze => info.require(Role::Ner).map(drop),
        }
    }
}

/// A validated request of any task.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    /// See [`summarize`].
    Summarize(SummarizeJob),
    /// See [`entities`].
    Entities(EntitiesJob),
    /// See [`analyze`].
    Analyze(AnalyzeJob),
}

/// The result of any task.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Of [`Task::Summarize`].
    Summary(Summary),
    /// Of [`Task::Entities`].
    Entities(Entities),
    /// Of [`Task::Analyze`].
    Analysis(Analysis),
}

impl Job {
    /// Refuse the job at once when the models picked for it (`info`, with the model the
    /// request named, if any, as `named`) cannot run it: its task's own check, and an
    /// ABSTRACTIVE summary from a named encoder, which contradicts itself (naming an
    /// encoder asks for its key points) rather than lacking a model on the server.
    ///
    /// # Errors
    /// [`Error::ModelMissing`]; [`Error::InvalidArgument`] for `model`.
    pub fn admit(&self, info: &EngineInfo, named: Option<&str>) -> Result<()> {
        self.task().admit(info)?;
        let summary = match self {
            Job::Summarize(job) => Some(job),
            Job::Analyze(job) => Some(&job.summarize),
            Job::Entities(_) => None,
        };
        if let (Some(name), Some(summary)) = (named, summary) {
            if summary.mode == Mode::Abstractive && !info.has(Role::Summarizer) {
                return Err(Error::invalid(
                    "model",
                    format!(
                        "{name:?} is a sentence encoder, for EXTRACTIVE key points; ABSTRACTIVE needs a summarizer: name one, or no model for the default, or ask for EXTRACTIVE / AUTO"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The job's task.
    pub fn task(&self) -> Task {
        match self {
            Job::Summarize(_) => Task::Summarize,
            Job::Entities(_) => Task::Entities,
            Job::Analyze(_) => Task::Analyze,
        }
    }

    /// The text the job reads.
    pub fn text(&self) -> &str {
        match self {
            Job::Summarize(job) => &job.text,
            Job::Entities(job) => &job.text,
            Job::Analyze(job) => &job.summarize.text,
        }
    }

    /// The model whose tokenizer counts the text for the `--max-text-tokens` limit.
    pub fn reader(&self, info: &EngineInfo) -> Role {
        match self {
            Job::Summarize(job) => job.reader(info),
            Job::Entities(_) | Job::Analyze(_) => Role::Ner,
        }
    }
}

/// Run jobs of one task together: one result per job, in order. Between pieces of long
/// work a task asks `wanted(i)` whether job `i`'s caller still waits for it.
pub fn run(
    engine: &mut dyn Engine,
    jobs: &[&Job],
    wanted: &dyn Fn(usize) -> bool,
) -> Vec<Result<Output>> {
    match jobs.first().map(|job| job.task()) {
        None => Vec::new(),
        Some(Task::Summarize) => typed(jobs, |jobs| summarize::run(engine, jobs, wanted)),
        Some(Task::Entities) => typed(jobs, |jobs| entities::run(engine, jobs)),
        Some(Task::Analyze) => typed(jobs, |jobs| analyze::run(engine, jobs, wanted)),
    }
}

/// The jobs as `J`, run by `run`; a job of another task in the batch is a bug.
fn typed<J: TaskJob>(
    jobs: &[&Job],
    run: impl FnOnce(&[&J]) -> Vec<Result<J::Output>>,
) -> Vec<Result<Output>> {
    let Some(typed) = jobs
        .iter()
        .map(|job| J::of(job))
        .collect::<Option<Vec<&J>>>()
    else {
        return jobs
            .iter()
            .map(|_| Err(Error::Internal("a batch mixed jobs of two tasks".into())))
            .collect();
    };
    run(&typed)
        .into_iter()
        .map(|result| result.map(J::wrap))
        .collect()
}

/// A task's job type, with its place in [`Job`] and its result's place in [`Output`].
pub trait TaskJob: Sized {
    /// The task's result.
    type Output;
    /// The job as a [`Job`].
    fn into_job(self) -> Job;
    /// The job inside `job`, if it is of this task.
    fn of(job: &Job) -> Option<&Self>;
    /// The result as an [`Output`].
    fn wrap(output: Self::Output) -> Output;
    /// The result inside `output`, if it is of this task.
    fn unwrap(output: Output) -> Option<Self::Output>;
}

macro_rules! impl_task {
    ($job:ident => $variant:ident, $output:ident => $out_variant:ident) => {
        impl TaskJob for $job {
            type Output = $output;

            fn into_job(self) -> Job {
                Job::$variant(self)
            }

            fn of(job: &Job) -> Option<&Self> {
                match job {
                    Job::$variant(job) => Some(job),
                    _ => None,
                }
            }

            fn wrap(output: $output) -> Output {
                Output::$out_variant(output)
            }

            fn unwrap(output: Output) -> Option<$output> {
                match output {
                    Output::$out_variant(output) => Some(output),
                    _ => None,
                }
            }
        }
    };
}

impl_task!(SummarizeJob => Summarize, Summary => Summary);
impl_task!(EntitiesJob => Entities, Entities => Entities);
impl_task!(AnalyzeJob => Analyze, Analysis => Analysis);
