//! Serving behaviour under load, against the real server on 127.0.0.1:0 with the fake
//! engine (whose speed the tests set): dynamic batching, deadlines, metrics, timing
//! metadata, long abstractive inputs, Analyze, and graceful shutdown of the real binary.

use std::time::Duration;

use crate::common::{metric, TestServer};
use gist::engine::fake::{FakeEngine, Gate};
use gist::engine::{Embedding, Engine, EngineInfo, Generated, Generation, Role, Tagged};
use gist::metrics::Metrics;
use gist::pb;
use gist::pb::analyzer_client::AnalyzerClient;
use gist::pb::entity_extractor_client::EntityExtractorClient;
use gist::pb::summarizer_client::SummarizerClient;
use gist::server::Limits;
use gist::tasks::Task;
use gist::worker::{Worker, WorkerArgs};
use tonic::Code;

/// A server whose fake engine is held at `gate`, and its worker.
async fn start_gated(gate: &Gate, args: WorkerArgs) -> (TestServer, Worker) {
    let engine = FakeEngine::new().gated(gate);
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

async fn start(engine: impl Engine + Send + 'static, args: WorkerArgs) -> TestServer {
    let worker = Worker::spawn(
        move || Ok(Box::new(engine) as Box<dyn Engine>),
        args,
        Metrics::new(&gist::tasks::Task::names()),
    );
    worker.ready().await.unwrap();
    TestServer::start(worker, Limits::default()).await
}

const NAMES: [&str; 6] = ["Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_share_a_batch_and_each_gets_its_own_answer() {
    let gate = Gate::shut();
    let (server, worker) = start_gated(&gate, WorkerArgs::default()).await;
    let channel = server.channel().await;
    // The first request occupies the model thread (held at the gate); the next six arrive
    // while it works and are gathered into one batch.
    let mut first = EntityExtractorClient::new(channel.clone());
    let blocker = tokio::spawn(async move {
        first
            .extract_entities(pb::ExtractEntitiesRequest {
                text: "We met Zulu there.".into(),
                ..Default::default()
            })
            .await
    });
    gate.arrived(1).await;
    let calls: Vec<_> = NAMES
        .iter()
        .map(|name| {
            let mut client = EntityExtractorClient::new(channel.clone());
            let text = format!("Yesterday we met {name} in town.");
            tokio::spawn(async move {
                client
                    .extract_entities(pb::ExtractEntitiesRequest {
                        text,
                        id: name.to_string(),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    crate::common::until(|| worker.queue_depth(Task::Entities) == NAMES.len()).await;
    gate.open();
    assert!(blocker.await.unwrap().is_ok());
    for (call, name) in calls.into_iter().zip(NAMES) {
        let response = call.await.unwrap();
        let batch: usize = response
            .metadata()
            .get("x-batch-size")
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(batch > 1, "{name} ran in a batch of {batch}");
        let body = response.into_inner();
        assert_eq!(body.id, name);
        let names: Vec<&str> = body.entities.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(names, [name], "each caller gets its own entities");
    }
    let page = server.metrics().await;
    let batches = metric(&page, r#"gist_batch_size_count{queue="entities"}"#);
    let requests = metric(&page, r#"gist_batch_size_sum{queue="entities"}"#);
    assert_eq!(requests, 7.0, "{page}");
    assert!(batches < 7.0, "7 requests ran in {batches} batches");
    assert_eq!(
        metric(
            &page,
            r#"gist_requests_total{code="OK",rpc="ExtractEntities"}"#
        ),
        7.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_deadline_never_reaches_the_model() {
    let gate = Gate::shut();
    let (server, _worker) = start_gated(&gate, WorkerArgs::default()).await;
    let channel = server.channel().await;
    let mut first = SummarizerClient::new(channel.clone());
    let blocker = tokio::spawn(async move {
        first
            .summarize(pb::SummarizeRequest {
                text: "A first article. It keeps the model busy for a while.".into(),
                ..Default::default()
            })
            .await
    });
    gate.arrived(1).await;
    let mut late = SummarizerClient::new(channel.clone());
    let mut request = tonic::Request::new(pb::SummarizeRequest {
        text: "A second article. Its caller cannot wait long.".into(),
        ..Default::default()
    });
    request.set_timeout(Duration::from_millis(100));
    let status = late.summarize(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        !blocker.is_finished() && gate.arrivals() == 1,
        "answered at the deadline, not after the model"
    );
    gate.open();
    assert!(blocker.await.unwrap().is_ok());
    // Once the model thread has looked at the queue again, check it never ran the late one.
    let dropped_late = || async {
        let page = server.metrics().await;
        metric(
            &page,
            r#"gist_dropped_total{queue="summarize",reason="cancelled"}"#,
        ) + metric(
            &page,
            r#"gist_dropped_total{queue="summarize",reason="deadline"}"#,
        ) > 0.0
    };
    crate::common::until_async(dropped_late).await;
    let page = server.metrics().await;
    assert_eq!(
        metric(&page, r#"gist_batch_size_count{queue="summarize"}"#),
        1.0,
        "{page}"
    );
    let dropped = metric(
        &page,
        r#"gist_dropped_total{queue="summarize",reason="cancelled"}"#,
    ) + metric(
        &page,
        r#"gist_dropped_total{queue="summarize",reason="deadline"}"#,
    );
    assert_eq!(dropped, 1.0, "{page}");
    assert_eq!(
        metric(
            &page,
            r#"gist_requests_total{code="DEADLINE_EXCEEDED",rpc="Summarize"}"#
        ),
        1.0
    );
}

#[tokio::test]
async fn responses_carry_the_request_id_and_timing() {
    let server = start(FakeEngine::new(), WorkerArgs::default()).await;
    let mut client = SummarizerClient::new(server.channel().await);
    let mut request = tonic::Request::new(pb::SummarizeRequest {
        text: "One sentence here. Another sentence there.".into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-request-id", "trace-42".parse().unwrap());
    let response = client.summarize(request).await.unwrap();
    let m = response.metadata();
    assert_eq!(m.get("x-request-id").unwrap(), "trace-42");
    for key in [
        "x-queue-time-ms",
        "x-inference-time-ms",
        "x-total-time-ms",
        "x-batch-size",
    ] {
        let value: u64 = m.get(key).unwrap().to_str().unwrap().parse().unwrap();
        assert!(value < 60_000, "{key} = {value}");
    }
    // Errors carry a (generated) id too.
    let status = client
        .summarize(pb::SummarizeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.metadata().get("x-request-id").unwrap().len(), 36);
    let page = server.metrics().await;
    assert_eq!(
        metric(
            &page,
            r#"gist_requests_total{code="INVALID_ARGUMENT",rpc="Summarize"}"#
        ),
        1.0
    );
    assert!(metric(&page, r#"gist_input_tokens_total{rpc="Summarize"}"#) > 0.0);
    assert!(page.contains("process_resident_memory_bytes"));
}

#[tokio::test]
async fn long_abstractive_inputs_are_summarized_in_chunks_not_truncated() {
    let server = start(FakeEngine::new(), WorkerArgs::default()).await;
    let mut client = SummarizerClient::new(server.channel().await);
    // 300 sentences of 8 words: 2,400 words against the fake model's 512-word window.
    let text: String = (0..300)
        .map(|i| format!("Sentence number {i} says something new today. "))
        .collect();
    let response = client
        .summarize(pb::SummarizeRequest {
            text,
            mode: pb::SummaryMode::Abstractive as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(response.chunks >= 5, "{} chunks", response.chunks);
    assert!(!response.truncated);
    assert_eq!(response.mode, pb::SummaryMode::Abstractive as i32);
    // The fake model keeps the first words of each chunk, so the reduce step's input began
    // with the first chunk's summary.
    assert!(
        response.summary.starts_with("Sentence number 0 says"),
        "{}",
        response.summary
    );
    let short = client
        .summarize(pb::SummarizeRequest {
            text: "A short article. It fits.".into(),
            mode: pb::SummaryMode::Abstractive as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(short.chunks, 1);
}

/// A summarizer that names someone the article never mentions.
struct Inventive(FakeEngine);

impl Engine for Inventive {
    fn info(&self) -> &EngineInfo {
        self.0.info()
    }
    fn embed(&mut self, s: &[&str]) -> gist::Result<Vec<Embedding>> {
        self.0.embed(s)
    }
    fn tag(&mut self, t: &[&str]) -> gist::Result<Vec<Tagged>> {
        self.0.tag(t)
    }
    fn generate(&mut self, t: &[&str], _: &Generation) -> gist::Result<Vec<Generated>> {
        Ok(t.iter()
            .map(|_| Generated {
                text: "The talks involved Khan and also Zorro yesterday.".into(),
                input_tokens: 10,
                output_tokens: 9,
                truncated: false,
            })
            .collect())
    }
    fn count_tokens(&mut self, m: Role, t: &[&str]) -> gist::Result<Vec<usize>> {
        self.0.count_tokens(m, t)
    }
}

#[tokio::test]
async fn analyze_flags_summary_entities_the_source_never_mentions() {
    let server = start(Inventive(FakeEngine::new()), WorkerArgs::default()).await;
    let mut client = AnalyzerClient::new(server.channel().await);
    let text = crate::common::khan_li();
    let response = client
        .analyze(pb::AnalyzeRequest {
            text: text.clone(),
            id: "a1".into(),
            mode: pb::SummaryMode::Abstractive as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.id, "a1");
    let summary = response.summary.unwrap();
    assert_eq!(
        summary.summary,
        "The talks involved Khan and also Zorro yesterday."
    );
    let entities = response.entities.unwrap();
    assert!(entities.entities.iter().any(|e| e.text.contains("Keqiang")));
    let checks: Vec<(&str, bool, usize)> = response
        .summary_entities
        .iter()
        .map(|s| {
            let e = s.entity.as_ref().unwrap();
            (e.text.as_str(), s.supported, s.mentions.len())
        })
        .collect();
    let khan = checks.iter().find(|c| c.0 == "Khan").expect("Khan checked");
    assert!(khan.1 && khan.2 >= 2, "{checks:?}");
    assert!(checks.contains(&("Zorro", false, 0)), "{checks:?}");
    assert_eq!(response.unsupported_entities, 1);
    // Mentions point at the source.
    let chars: Vec<char> = text.chars().collect();
    for s in response.summary_entities.iter().filter(|s| s.supported) {
        for m in &s.mentions {
            let found: String = chars[m.start as usize..m.end as usize].iter().collect();
            assert_eq!(found, s.entity.as_ref().unwrap().text);
        }
    }
    // The usual limits apply, naming the field.
    let status = client
        .analyze(pb::AnalyzeRequest {
            text: "Some text.".into(),
            min_score: Some(2.0),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("min_score"),
        "{}",
        status.message()
    );
}

/// The real binary: SIGTERM while requests are queued answers every accepted one, turns
/// health NOT_SERVING at once, refuses new work, and exits 0.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_every_accepted_request() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tonic_health::pb::health_check_response::ServingStatus;

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gist"))
        .args([
            "serve",
            "--engine",
            "fake",
            "--fake-delay-ms",
            "150",
            "--max-batch",
            "1",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // The log says where the API and the metrics listen.
    let (mut addr, mut metrics_addr) = (None, None);
    while addr.is_none() || metrics_addr.is_none() {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("server exited early");
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        let fields = &json["fields"];
        let message = fields["message"].as_str().unwrap_or("");
        let address = fields["address"].as_str().map(str::to_string);
        if message.starts_with("listening") {
            addr = address;
        } else if message.starts_with("metrics at") {
            metrics_addr = address.map(|a| a.parse::<std::net::SocketAddr>().unwrap());
        }
    }
    let addr = addr.unwrap();
    let log = tokio::spawn(async move {
        let mut all = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    // Wait until the fake model is "loaded".
    crate::common::health_becomes(
        channel.clone(),
        "gist.v1.Summarizer",
        ServingStatus::Serving,
    )
    .await;
    const N: usize = 8;
    let calls: Vec<_> = (0..N)
        .map(|i| {
            let mut client = SummarizerClient::new(channel.clone());
            tokio::spawn(async move {
                client
                    .summarize(pb::SummarizeRequest {
                        text: format!("Article {i} begins here. It ends there."),
                        id: i.to_string(),
                        ..Default::default()
                    })
                    .await
            })
        })
        .collect();
    // All N are accepted (8 × 150 ms of work) before the signal.
    let metrics_addr = metrics_addr.expect("the server logs its metrics address");
    crate::common::until_async(|| async {
        let page = crate::common::http_get(metrics_addr, "/metrics").await;
        metric(&page, "gist_in_flight_requests") == N as f64
    })
    .await;
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    crate::common::health_becomes(
        channel.clone(),
        "gist.v1.Summarizer",
        ServingStatus::NotServing,
    )
    .await;
    assert_eq!(
        crate::common::summarizer_health(channel.clone()).await,
        ServingStatus::NotServing,
        "NOT_SERVING while draining"
    );
    let refused = SummarizerClient::new(channel.clone())
        .summarize(pb::SummarizeRequest {
            text: "Too late. The server is draining.".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    for (i, call) in calls.into_iter().enumerate() {
        let response = call.await.unwrap().unwrap().into_inner();
        assert_eq!(response.id, i.to_string());
    }
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the server exits after draining")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let log = log.await.unwrap();
    assert!(log.contains("accepted requests answered"), "{log}");
}

#[tokio::test]
async fn texts_over_the_token_limit_are_refused_naming_the_limit() {
    let server = start(
        FakeEngine::new(),
        WorkerArgs {
            max_text_tokens: 50,
            ..WorkerArgs::default()
        },
    )
    .await;
    let long: String = (0..100).map(|i| format!("word{i} ")).collect();
    let status = EntityExtractorClient::new(server.channel().await)
        .extract_entities(pb::ExtractEntitiesRequest {
            text: long.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "text: is 101 model tokens long; the limit is 50 (--max-text-tokens)"
    );
    // Short texts pass, and a refused request does not stop the rest of its batch.
    let mut client = SummarizerClient::new(server.channel().await);
    assert!(client
        .summarize(pb::SummarizeRequest {
            text: "A short text. It fits.".into(),
            ..Default::default()
        })
        .await
        .is_ok());
}
