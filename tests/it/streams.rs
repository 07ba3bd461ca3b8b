//! The streaming RPCs against the real server on 127.0.0.1:0 with the fake engine (whose
//! speed the tests set): answers in order with per-item errors, back-pressure, a client
//! that goes away, the admission rule for stream items, and shutdown.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{metric, TestServer};
use gist::engine::fake::{FakeEngine, Gate};
use gist::engine::Engine;
use gist::metrics::Metrics;
use gist::pb;
use gist::pb::entity_extractor_client::EntityExtractorClient;
use gist::pb::extract_entities_stream_response::Outcome;
use gist::pb::summarizer_client::SummarizerClient;
use gist::server::Limits;
use gist::server::ServerArgs;
use gist::worker::{Worker, WorkerArgs};
use tonic::Code;

async fn start(delay_ms: u64, worker: WorkerArgs, server: ServerArgs) -> TestServer {
    let worker = Worker::spawn(
        move || {
            let mut engine = FakeEngine::new();
            engine.delay = Duration::from_millis(delay_ms);
            Ok(Box::new(engine) as Box<dyn Engine>)
        },
        worker,
        Metrics::new(&gist::tasks::Task::names()),
    );
    worker.ready().await.unwrap();
    TestServer::start_with(worker, Limits::default(), server).await
}

fn request(id: &str, text: &str) -> pb::ExtractEntitiesRequest {
    pb::ExtractEntitiesRequest {
        id: id.into(),
        text: text.into(),
        ..Default::default()
    }
}

/// An answer's entity texts, or its error's code and message.
type Seen = Result<Vec<String>, (Code, String)>;

/// (id, entity texts or the error's code and message) of every answer.
fn summarize(answers: &[pb::ExtractEntitiesStreamResponse]) -> Vec<(String, Seen)> {
    answers
        .iter()
        .map(|a| {
            let outcome = match a.outcome.clone().expect("an outcome") {
                Outcome::Result(r) => {
                    assert_eq!(r.id, a.id);
                    Ok(r.entities.into_iter().map(|e| e.text).collect())
                }
                Outcome::Error(e) => Err((Code::from(e.code), e.message)),
            };
            (a.id.clone(), outcome)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answers_come_in_request_order_with_per_item_errors() {
    let server = start(30, WorkerArgs::default(), ServerArgs::default()).await;
    let mut client = EntityExtractorClient::new(server.channel().await);
    let mut requests: Vec<_> = (0..20)
        .map(|i| {
            request(
                &format!("item-{i:02}"),
                &format!("Report {i}: Khan met Li in Beijing."),
            )
        })
        .collect();
    requests[5].text = "   ".into(); // empty after trimming
    requests[9].id = String::new(); // no id
    requests[13].id = "item-12".into(); // the id of the item before it, still in flight
    requests[16].min_score = Some(1.5); // out of range
    let answers: Vec<_> = client
        .extract_entities_stream(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner()
        .map(|a| a.unwrap())
        .collect()
        .await;
    let got = summarize(&answers);
    assert_eq!(got.len(), 20, "one answer per request: {got:?}");
    let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    let mut expected: Vec<String> = (0..20).map(|i| format!("item-{i:02}")).collect();
    expected[9] = String::new();
    expected[13] = "item-12".into();
    assert_eq!(ids, expected, "answers in request order");
    for (i, (_, outcome)) in got.iter().enumerate() {
        match i {
            5 => assert_eq!(
                outcome,
                &Err((Code::InvalidArgument, "text: must not be empty".into()))
            ),
            9 => assert!(
                matches!(outcome, Err((Code::InvalidArgument, m)) if m.starts_with("id: is required")),
                "{outcome:?}"
            ),
            13 => assert!(
                matches!(outcome, Err((Code::InvalidArgument, m)) if m.contains("already in flight")),
                "{outcome:?}"
            ),
            16 => assert!(
                matches!(outcome, Err((Code::InvalidArgument, m)) if m.starts_with("min_score")),
                "{outcome:?}"
            ),
            _ => {
                let entities = outcome.as_ref().expect("a result");
                assert!(entities.iter().any(|e| e == "Beijing"), "{i}: {entities:?}");
            }
        }
    }
    let page = server.metrics().await;
    assert_eq!(
        metric(
            &page,
            r#"gist_requests_total{code="OK",rpc="ExtractEntitiesStream"}"#
        ),
        16.0
    );
    assert_eq!(
        metric(
            &page,
            r#"gist_requests_total{code="INVALID_ARGUMENT",rpc="ExtractEntitiesStream"}"#
        ),
        4.0
    );
    assert_eq!(metric(&page, "gist_stream_items"), 0.0);
    assert_eq!(metric(&page, "gist_streams_open"), 0.0);
}

use tokio_stream::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fast_producer_is_held_back_by_the_in_flight_bound() {
    const BOUND: usize = 4;
    // 150 items of about 40 KB: 6 MB, several times what HTTP/2 windows and buffers hold
    // (about 1 MB each way), so an unbounded server would take them all at once.
    const N: usize = 150;
    let server = start(
        30,
        WorkerArgs::default(),
        ServerArgs {
            stream_max_in_flight: BOUND,
            ..ServerArgs::default()
        },
    )
    .await;
    let mut client = EntityExtractorClient::new(server.channel().await);
    let body = "Khan met Li in Beijing. ".repeat(1700);
    let pulled = Arc::new(AtomicUsize::new(0));
    let producer = {
        let pulled = pulled.clone();
        tokio_stream::iter(0..N).map(move |i| {
            pulled.fetch_add(1, Ordering::SeqCst);
            request(&format!("big-{i}"), &body)
        })
    };
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let addr = server.metrics_addr;
        let finished = finished.clone();
        tokio::spawn(async move {
            let mut most = 0.0f64;
            while !finished.load(Ordering::SeqCst) {
                let page = crate::common::http_get(addr, "/metrics").await;
                most = most.max(metric(&page, "gist_stream_items"));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            most
        })
    };
    let mut answers = client
        .extract_entities_stream(producer)
        .await
        .unwrap()
        .into_inner();
    let first = answers.next().await.unwrap().unwrap();
    assert_eq!(first.id, "big-0");
    let pulled_at_first_answer = pulled.load(Ordering::SeqCst);
    let mut n = 1;
    while let Some(answer) = answers.next().await {
        let answer = answer.unwrap();
        assert_eq!(answer.id, format!("big-{n}"));
        assert!(matches!(answer.outcome, Some(Outcome::Result(_))));
        n += 1;
    }
    assert_eq!(n, N);
    finished.store(true, Ordering::SeqCst);
    let most = sampler.await.unwrap();
    assert!(
        most <= BOUND as f64,
        "the server held {most} items of one stream; the bound is {BOUND}"
    );
    assert_eq!(most, BOUND as f64, "the stream should fill its bound");
    assert!(
        pulled_at_first_answer < N / 2,
        "the producer was not held back: {pulled_at_first_answer} of {N} items taken before the first answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_goes_away_drops_its_queued_items() {
    // The model lets one item through at a time, when the test says.
    let gate = Gate::shut();
    let engine = FakeEngine::new().gated(&gate);
    let worker = Worker::spawn(
        move || Ok(Box::new(engine) as Box<dyn Engine>),
        WorkerArgs {
            max_batch: 1,
            ..WorkerArgs::default()
        },
        Metrics::new(&gist::tasks::Task::names()),
    );
    worker.ready().await.unwrap();
    let server = TestServer::start_with(worker, Limits::default(), ServerArgs::default()).await;
    let mut client = EntityExtractorClient::new(server.channel().await);
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    for i in 0..8 {
        tx.send(request(&format!("d{i}"), "Khan met Li in Beijing."))
            .await
            .unwrap();
    }
    let mut answers = client
        .extract_entities_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    gate.allow(1);
    let first = answers.next().await.unwrap().unwrap();
    assert_eq!(first.id, "d0");
    // The model is busy with d1 (held at the gate) when the client goes away: the response
    // stream and the request stream dropped, the connection closed.
    gate.arrived(2).await;
    drop(answers);
    drop(tx);
    drop(client);
    let metrics = || async { server.metrics().await };
    crate::common::until_async(|| async { metric(&metrics().await, "gist_streams_open") == 0.0 })
        .await;
    // The model moves on, and finds the callers of d2..d7 gone.
    gate.open();
    crate::common::until_async(|| async {
        metric(
            &metrics().await,
            r#"gist_dropped_total{queue="entities",reason="cancelled"}"#,
        ) == 6.0
    })
    .await;
    let page = server.metrics().await;
    let ran = metric(
        &page,
        r#"gist_requests_total{code="OK",rpc="ExtractEntitiesStream"}"#,
    );
    let dropped = metric(
        &page,
        r#"gist_dropped_total{queue="entities",reason="cancelled"}"#,
    );
    assert!(ran <= 3.0, "{ran} items ran after the client left");
    assert!(
        dropped >= 5.0,
        "only {dropped} queued items were dropped:\n{page}"
    );
    assert_eq!(metric(&page, "gist_stream_items"), 0.0);
    assert_eq!(metric(&page, "gist_streams_open"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_is_an_item_error_with_a_retry_hint() {
    let server = start(
        50,
        WorkerArgs {
            queue_capacity: 1,
            max_batch: 1,
            ..WorkerArgs::default()
        },
        ServerArgs::default(),
    )
    .await;
    let mut client = EntityExtractorClient::new(server.channel().await);
    let requests: Vec<_> = (0..8)
        .map(|i| request(&format!("q{i}"), "Khan met Li in Beijing."))
        .collect();
    let answers: Vec<_> = client
        .extract_entities_stream(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner()
        .map(|a| a.unwrap())
        .collect()
        .await;
    assert_eq!(answers.len(), 8);
    let refused: Vec<_> = answers
        .iter()
        .filter_map(|a| match &a.outcome {
            Some(Outcome::Error(e)) => Some(e.clone()),
            _ => None,
        })
        .collect();
    assert!(
        !refused.is_empty(),
        "a queue of 1 should refuse some of 8 items"
    );
    for e in &refused {
        assert_eq!(Code::from(e.code), Code::ResourceExhausted, "{e:?}");
        assert_eq!(e.retry_after_ms, 250);
        assert!(
            e.message.contains("entities queue is full"),
            "{}",
            e.message
        );
    }
    assert!(answers
        .iter()
        .any(|a| matches!(a.outcome, Some(Outcome::Result(_)))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn summarize_stream_answers_and_shutdown_ends_streams_unavailable() {
    let server = start(50, WorkerArgs::default(), ServerArgs::default()).await;
    let mut client = SummarizerClient::new(server.channel().await);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::SummarizeRequest {
        id: "s1".into(),
        text: "Khan called Li on Thursday. They discussed trade. Both praised the corridor.".into(),
        mode: pb::SummaryMode::Extractive as i32,
        max_key_points: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut answers = client
        .summarize_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = answers.next().await.unwrap().unwrap();
    assert_eq!(first.id, "s1");
    match first.outcome {
        Some(pb::summarize_stream_response::Outcome::Result(r)) => {
            assert_eq!(r.key_points.len(), 2);
            assert_eq!(r.mode, pb::SummaryMode::Extractive as i32);
        }
        other => panic!("{other:?}"),
    }
    // The server shuts down while the stream is open (the client still holds `tx`): the
    // stream ends UNAVAILABLE instead of keeping the server up.
    server.stop().await;
    let end = tokio::time::timeout(Duration::from_secs(10), answers.next())
        .await
        .expect("the stream should end when the server shuts down");
    match end {
        Some(Err(status)) => {
            assert_eq!(status.code(), Code::Unavailable, "{status:?}");
            assert!(status.message().contains("shutting down"), "{status:?}");
        }
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
    drop(tx);
}
