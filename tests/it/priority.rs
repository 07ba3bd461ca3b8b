//! Priority lanes: interactive calls are served before queued batch work, and batch work
//! still gets its share, with the fake engine (held at a gate, or given a known speed).

use std::time::{Duration, Instant};

use crate::common::TestServer;
use gist::engine::fake::{FakeEngine, Gate};
use gist::engine::Engine;
use gist::metrics::Metrics;
use gist::pb;
use gist::pb::entity_extractor_client::EntityExtractorClient;
use gist::server::Limits;
use gist::tasks::Task;
use gist::worker::{Lane, Worker, WorkerArgs};
use tokio_stream::StreamExt;

async fn start(engine: FakeEngine, args: WorkerArgs) -> (TestServer, Worker) {
    let worker = Worker::spawn(
        move || Ok(Box::new(engine) as Box<dyn Engine>),
        args,
        Metrics::new(&Task::names()),
    );
    worker.ready().await.unwrap();
    (
        TestServer::start(worker.clone(), Limits::default()).await,
        worker,
    )
}

fn item(i: usize) -> pb::ExtractEntitiesRequest {
    pb::ExtractEntitiesRequest {
        id: format!("item-{i}"),
        text: format!("Item {i} was read by Alpha Bravo."),
        ..Default::default()
    }
}

/// Open a stream of `n` items; returns a task that yields (answers, when each came).
fn stream(
    channel: tonic::transport::Channel,
    n: usize,
) -> tokio::task::JoinHandle<Vec<(pb::ExtractEntitiesStreamResponse, Instant)>> {
    tokio::spawn(async move {
        let requests = tokio_stream::iter((0..n).map(item));
        let mut answers = EntityExtractorClient::new(channel)
            .extract_entities_stream(requests)
            .await
            .unwrap()
            .into_inner();
        let mut out = Vec::new();
        while let Some(answer) = answers.next().await {
            out.push((answer.unwrap(), Instant::now()));
        }
        out
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interactive_call_overtakes_queued_batch_work() {
    let gate = Gate::shut();
    let args = WorkerArgs {
        max_batch: 4,
        batch_delay_ms: 0,
        ..WorkerArgs::default()
    };
    let (server, worker) = start(FakeEngine::new().gated(&gate), args).await;
    let channel = server.channel().await;
    // A stream fills the batch lane: the model holds its first batch at the gate, the rest
    // of its items (up to the stream's in-flight bound) wait behind it.
    let batch = stream(channel.clone(), 200);
    gate.arrived(1).await;
    crate::common::until(|| worker.queue_depth(Task::Entities) >= 20).await;
    // An interactive call arrives behind 20+ queued batch items.
    let mut client = EntityExtractorClient::new(channel.clone());
    let interactive = tokio::spawn(async move {
        let answer = client
            .extract_entities(pb::ExtractEntitiesRequest {
                text: "Imran Khan met Li Keqiang.".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        answer.into_inner()
    });
    crate::common::until(|| worker.lane_depth(Task::Entities, Lane::Interactive) == 1).await;
    assert!(worker.lane_depth(Task::Entities, Lane::Batch) >= 20);
    // Two batches pass the gate: the one held, and the next, which must be the
    // interactive call (FIFO would run the queued batch items first and hold the call
    // behind the gate until the test gave up).
    gate.allow(2);
    gate.arrived(3).await;
    let answer = tokio::time::timeout(crate::common::HANG_GUARD, interactive)
        .await
        .expect("the interactive call ran in the second batch")
        .unwrap();
    assert!(!answer.entities.is_empty());
    gate.open();
    let items = batch.await.unwrap();
    assert_eq!(items.len(), 200, "the batch stream finishes");
    assert!(items.iter().all(|(a, _)| matches!(
        a.outcome,
        Some(pb::extract_entities_stream_response::Outcome::Result(_))
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_steady_interactive_load_a_200_item_batch_stream_still_finishes() {
    let delay = Duration::from_millis(10);
    let mut engine = FakeEngine::new();
    engine.delay = delay;
    let args = WorkerArgs {
        max_batch: 4,
        batch_delay_ms: 0,
        batch_lane_share: 8,
        ..WorkerArgs::default()
    };
    let (server, _worker) = start(engine, args).await;
    let channel = server.channel().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Two closed-loop interactive callers keep the interactive lane busy throughout.
    let callers: Vec<_> = (0..2)
        .map(|_| {
            let mut client = EntityExtractorClient::new(channel.clone());
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let started = Instant::now();
                    client
                        .extract_entities(pb::ExtractEntitiesRequest {
                            text: "Imran Khan met Li Keqiang.".into(),
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    let started = Instant::now();
    let items = stream(channel.clone(), 200).await.unwrap();
    let stream_time = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut latencies: Vec<Duration> = Vec::new();
    for caller in callers {
        latencies.extend(caller.await.unwrap());
    }
    assert_eq!(items.len(), 200, "the batch stream finishes");
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    // Reported, not asserted: timings on a shared machine are noise.
    println!(
        "priority lanes: {} interactive calls during a 200-item stream ({:.2} s); interactive p50 {:.1} ms, p99 {:.1} ms = {:.1}x the model's {} ms per batch",
        latencies.len(),
        stream_time.as_secs_f64(),
        p(0.5).as_secs_f64() * 1e3,
        p(0.99).as_secs_f64() * 1e3,
        p(0.99).as_secs_f64() / delay.as_secs_f64(),
        delay.as_millis()
    );
}
