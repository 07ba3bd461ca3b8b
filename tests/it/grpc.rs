//! gRPC integration tests: the real tonic server on 127.0.0.1:0, the generated clients,
//! and the deterministic fake engine (timing is controlled by test engines below).

use std::sync::mpsc as std_mpsc;

use crate::common::TestServer;
use gist::engine::fake::{FakeEngine, Gate};
use gist::engine::{Embedding, Engine, EngineInfo, Generated, Generation, Role, Tagged};
use gist::metrics::Metrics;
use gist::pb;
use gist::pb::entity_extractor_client::EntityExtractorClient;
use gist::pb::summarizer_client::SummarizerClient;
use gist::server::Limits;
use gist::tasks::Task;
use gist::worker::{Worker, WorkerArgs};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

fn worker_with(engine: impl Engine + Send + 'static, capacity: usize) -> Worker {
    Worker::spawn(
        move || Ok(Box::new(engine) as Box<dyn Engine>),
        WorkerArgs {
            queue_capacity: capacity,
            ..WorkerArgs::default()
        },
        Metrics::new(&gist::tasks::Task::names()),
    )
}

async fn server(engine: impl Engine + Send + 'static) -> TestServer {
    let worker = worker_with(engine, 16);
    worker.ready().await.unwrap();
    TestServer::start(worker, Limits::default()).await
}

fn summarize_req(text: &str) -> pb::SummarizeRequest {
    pb::SummarizeRequest {
        text: text.into(),
        ..Default::default()
    }
}

fn entities_req(text: &str) -> pb::ExtractEntitiesRequest {
    pb::ExtractEntitiesRequest {
        text: text.into(),
        ..Default::default()
    }
}

async fn health(server: &TestServer, service: &str) -> ServingStatus {
    let mut client = HealthClient::new(server.channel().await);
    let status = client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    ServingStatus::try_from(status).unwrap()
}

fn char_slice(text: &str, start: u32, end: u32) -> String {
    text.chars()
        .skip(start as usize)
        .take((end - start) as usize)
        .collect()
}

#[tokio::test]
async fn summarize_returns_key_points_that_slice_the_input() {
    let server = server(FakeEngine::encoder_only()).await;
    let mut client = SummarizerClient::new(server.channel().await);
    let text = crate::common::khan_li();
    let request = pb::SummarizeRequest {
        id: "req-1".into(),
        ..summarize_req(&text)
    };
    let resp = client.summarize(request).await.unwrap().into_inner();
    assert_eq!(resp.id, "req-1");
    assert_eq!(resp.mode, pb::SummaryMode::Extractive as i32);
    assert_eq!(resp.model, "fake-encoder");
    assert_eq!(resp.key_points.len(), 5);
    assert!(resp.sentence_count >= 12, "{}", resp.sentence_count);
    let mut previous_end = 0;
    for k in &resp.key_points {
        let (start, end) = (k.start.unwrap(), k.end.unwrap());
        assert_eq!(char_slice(&text, start, end), k.text);
        assert!(start >= previous_end, "key points are in document order");
        previous_end = end;
        assert!((0.0..=1.0).contains(&k.score));
        assert!(
            !k.text.contains("Facebook") && !k.text.contains("date 2021"),
            "{}",
            k.text
        );
    }
    let joined: Vec<&str> = resp.key_points.iter().map(|k| k.text.as_str()).collect();
    assert_eq!(resp.summary, joined.join(" "));

    let three = client
        .summarize(pb::SummarizeRequest {
            max_key_points: 3,
            ..summarize_req(&text)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(three.key_points.len(), 3);
}

#[tokio::test]
async fn auto_mode_writes_an_abstractive_summary_when_a_summarizer_is_loaded() {
    let server = server(FakeEngine::new()).await;
    let mut client = SummarizerClient::new(server.channel().await);
    let request = pb::SummarizeRequest {
        generation: Some(pb::GenerationOptions {
            max_length: 6,
            min_length: 2,
            ..Default::default()
        }),
        ..summarize_req(
            "Imran Khan spoke to Li Keqiang on Thursday. They discussed vaccines and trade.",
        )
    };
    let resp = client.summarize(request).await.unwrap().into_inner();
    assert_eq!(resp.mode, pb::SummaryMode::Abstractive as i32);
    assert_eq!(resp.model, "fake-summarizer");
    // The fake summarizer returns the first max_length words.
    assert_eq!(resp.summary, "Imran Khan spoke to Li Keqiang");
    assert!(resp
        .key_points
        .iter()
        .all(|k| k.start.is_none() && k.end.is_none()));

    let extractive = pb::SummarizeRequest {
        mode: pb::SummaryMode::Extractive as i32,
        ..summarize_req("One sentence is here. Another sentence is there.")
    };
    let resp = client.summarize(extractive).await.unwrap().into_inner();
    assert_eq!(resp.mode, pb::SummaryMode::Extractive as i32);
}

#[tokio::test]
async fn entities_are_merged_filtered_and_carry_both_offsets() {
    let server = server(FakeEngine::new()).await;
    let mut client = EntityExtractorClient::new(server.channel().await);
    let text = "He met Imran Khan in 🚀 Islamabad and “Li Keqiang” in 北京.";
    let resp = client
        .extract_entities(pb::ExtractEntitiesRequest {
            id: "e1".into(),
            ..entities_req(text)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.id, "e1");
    assert_eq!(resp.model, "fake-ner");
    let got: Vec<&str> = resp.entities.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(got, ["Imran Khan", "Islamabad", "Li Keqiang"]);
    let bytes = text.as_bytes();
    let utf16: Vec<u16> = text.encode_utf16().collect();
    for e in &resp.entities {
        assert_eq!(e.label, "MISC");
        assert_eq!(char_slice(text, e.start, e.end), e.text);
        assert_eq!(
            &bytes[e.byte_start as usize..e.byte_end as usize],
            e.text.as_bytes()
        );
        assert_eq!(
            String::from_utf16(&utf16[e.utf16_start as usize..e.utf16_end as usize]).unwrap(),
            e.text
        );
    }
    // After the rocket (two UTF-16 units, one code point) the units run one ahead.
    let islamabad = &resp.entities[1];
    assert_eq!(islamabad.utf16_start, islamabad.start + 1);

    let filtered = client
        .extract_entities(pb::ExtractEntitiesRequest {
            labels: vec!["PER".into()],
            ..entities_req(text)
        })
        .await
        .unwrap()
        .into_inner();
    assert!(filtered.entities.is_empty());
    let high = client
        .extract_entities(pb::ExtractEntitiesRequest {
            min_score: Some(0.95),
            ..entities_req(text)
        })
        .await
        .unwrap()
        .into_inner();
    assert!(high.entities.is_empty());
    let kept = client
        .extract_entities(pb::ExtractEntitiesRequest {
            labels: vec!["MISC".into()],
            min_score: Some(0.5),
            ..entities_req(text)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kept.entities.len(), 3);
}

#[tokio::test]
async fn invalid_requests_get_invalid_argument_naming_field_and_limit() {
    let worker = worker_with(FakeEngine::new(), 16);
    worker.ready().await.unwrap();
    let server = TestServer::start(
        worker,
        Limits {
            max_text_chars: 40,
            ..Limits::default()
        },
    )
    .await;
    let mut summarizer = SummarizerClient::new(server.channel().await);
    let mut extractor = EntityExtractorClient::new(server.channel().await);
    let cases: Vec<(pb::SummarizeRequest, &str)> = vec![
        (summarize_req(""), "text: must not be empty"),
        (summarize_req(" \n\t "), "text: must not be empty"),
        (
            summarize_req(&"word ".repeat(20)),
            "limit is 40 (--max-text-chars)",
        ),
        (
            pb::SummarizeRequest {
                mode: 42,
                ..summarize_req("Some text.")
            },
            "mode: unknown value 42",
        ),
        (
            pb::SummarizeRequest {
                max_key_points: 99,
                ..summarize_req("Some text.")
            },
            "max_key_points: is 99; the limit is 20",
        ),
        (
            pb::SummarizeRequest {
                generation: Some(pb::GenerationOptions {
                    num_beams: 50,
                    ..Default::default()
                }),
                ..summarize_req("Some text.")
            },
            "generation.num_beams: is 50; the limit is 8",
        ),
    ];
    for (request, want) in cases {
        let status = summarizer.summarize(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{want}");
        assert!(
            status.message().contains(want),
            "{:?} should contain {want:?}",
            status.message()
        );
    }
    let status = extractor
        .extract_entities(pb::ExtractEntitiesRequest {
            min_score: Some(-0.5),
            ..entities_req("Imran Khan")
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("min_score:"),
        "{}",
        status.message()
    );
    let status = extractor
        .extract_entities(entities_req(""))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::InvalidArgument, "text: must not be empty")
    );
}

/// ABSTRACTIVE from a named encoder contradicts itself: INVALID_ARGUMENT naming the model,
/// not the "add a [summarizer]" answer of a server without one (this server has one).
#[tokio::test]
async fn abstractive_from_a_named_encoder_is_an_invalid_argument() {
    let server = server(FakeEngine::new()).await;
    let mut summarizer = SummarizerClient::new(server.channel().await);
    let ask = |model: &str, mode: pb::SummaryMode| pb::SummarizeRequest {
        mode: mode as i32,
        model: model.into(),
        ..summarize_req("Imran Khan met Li Keqiang. They spoke about trade.")
    };
    let status = summarizer
        .summarize(ask("fake-encoder", pb::SummaryMode::Abstractive))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .starts_with("model: \"fake-encoder\" is a sentence encoder")
            && status.message().contains("EXTRACTIVE")
            && !status.message().contains("[summarizer]"),
        "{}",
        status.message()
    );
    // The same encoder for key points, and the summarizer for ABSTRACTIVE, are fine.
    for (model, mode) in [
        ("fake-encoder", pb::SummaryMode::Extractive),
        ("fake-encoder", pb::SummaryMode::Auto),
        ("fake-summarizer", pb::SummaryMode::Abstractive),
    ] {
        let summary = summarizer
            .summarize(ask(model, mode))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(summary.model, model);
    }
}

#[tokio::test]
async fn missing_models_give_failed_precondition_and_unavailable() {
    let server = server(FakeEngine::encoder_only()).await;
    let mut summarizer = SummarizerClient::new(server.channel().await);
    let status = summarizer
        .summarize(pb::SummarizeRequest {
            mode: pb::SummaryMode::Abstractive as i32,
            ..summarize_req("Some text here.")
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("[summarizer]") && status.message().contains("models.toml"),
        "{}",
        status.message()
    );

    let mut extractor = EntityExtractorClient::new(server.channel().await);
    let status = extractor
        .extract_entities(entities_req("Imran Khan"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("no NER model"),
        "{}",
        status.message()
    );

    assert_eq!(
        health(&server, "gist.v1.Summarizer").await,
        ServingStatus::Serving
    );
    assert_eq!(
        health(&server, "gist.v1.EntityExtractor").await,
        ServingStatus::NotServing
    );
}

#[tokio::test]
async fn health_follows_model_loading() {
    let (release_tx, release_rx) = std_mpsc::channel::<()>();
    let worker = Worker::spawn(
        move || {
            release_rx.recv().unwrap();
            Ok(Box::new(FakeEngine::new()) as Box<dyn Engine>)
        },
        WorkerArgs::default(),
        Metrics::new(&gist::tasks::Task::names()),
    );
    let server = TestServer::start(worker.clone(), Limits::default()).await;
    assert_eq!(
        health(&server, "gist.v1.Summarizer").await,
        ServingStatus::NotServing
    );
    assert_eq!(
        health(&server, "gist.v1.EntityExtractor").await,
        ServingStatus::NotServing
    );
    let mut client = SummarizerClient::new(server.channel().await);
    let status = client
        .summarize(summarize_req("Some text here."))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("loading"), "{}", status.message());

    release_tx.send(()).unwrap();
    worker.ready().await.unwrap();
    // The health task follows the worker asynchronously; watch the standard stream.
    let mut health_client = HealthClient::new(server.channel().await);
    let mut stream = health_client
        .watch(HealthCheckRequest {
            service: "gist.v1.EntityExtractor".into(),
        })
        .await
        .unwrap()
        .into_inner();
    loop {
        let status = stream.message().await.unwrap().unwrap().status;
        if status == ServingStatus::Serving as i32 {
            break;
        }
    }
    assert_eq!(
        health(&server, "gist.v1.Summarizer").await,
        ServingStatus::Serving
    );
    assert!(client
        .summarize(summarize_req("Some text here."))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_failed_load_is_reported_not_hung() {
    let worker = Worker::spawn(
        || {
            Err(gist::Error::Manifest {
                path: "models/models.toml".into(),
                reason: "no such file".into(),
            })
        },
        WorkerArgs::default(),
        Metrics::new(&gist::tasks::Task::names()),
    );
    let server = TestServer::start(worker.clone(), Limits::default()).await;
    assert!(worker.ready().await.is_err());
    let mut client = SummarizerClient::new(server.channel().await);
    let status = client
        .summarize(summarize_req("Some text here."))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("models failed to load")
            && status.message().contains("no such file"),
        "{}",
        status.message()
    );
    assert_eq!(
        health(&server, "gist.v1.Summarizer").await,
        ServingStatus::NotServing
    );
}

#[tokio::test]
async fn a_full_queue_answers_resource_exhausted_with_a_retry_hint() {
    let gate = Gate::shut();
    let worker = worker_with(FakeEngine::encoder_only().gated(&gate), 1);
    worker.ready().await.unwrap();
    let server = TestServer::start(worker.clone(), Limits::default()).await;
    let channel = server.channel().await;
    let request = summarize_req("Some text here. And more text there.");

    // First request: taken by the model thread, which then blocks.
    let mut c1 = SummarizerClient::new(channel.clone());
    let r1 = request.clone();
    let first = tokio::spawn(async move { c1.summarize(r1).await });
    gate.arrived(1).await;
    // Second: waits in the queue (capacity 1). Third: refused at once.
    let mut c2 = SummarizerClient::new(channel.clone());
    let r2 = request.clone();
    let second = tokio::spawn(async move { c2.summarize(r2).await });
    while worker.queue_depth(Task::Summarize) < 1 {
        tokio::task::yield_now().await;
    }
    let mut c3 = SummarizerClient::new(channel.clone());
    let third = c3.summarize(request.clone()).await;
    let status = third.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("queue is full"),
        "{}",
        status.message()
    );
    assert_eq!(
        status.metadata().get("grpc-retry-pushback-ms").unwrap(),
        "250"
    );

    // Both accepted requests are answered once the model moves on.
    gate.open();
    assert!(first.await.unwrap().is_ok());
    assert!(second.await.unwrap().is_ok());
}

/// An engine that panics on one input, as a model runtime bug would.
struct Panicky(FakeEngine);

impl Engine for Panicky {
    fn info(&self) -> &EngineInfo {
        self.0.info()
    }
    fn embed(&mut self, s: &[&str]) -> gist::Result<Vec<Embedding>> {
        if s.iter().any(|t| t.contains("boom")) {
            panic!("tensor shape mismatch");
        }
        self.0.embed(s)
    }
    fn tag(&mut self, t: &[&str]) -> gist::Result<Vec<Tagged>> {
        self.0.tag(t)
    }
    fn generate(&mut self, t: &[&str], o: &Generation) -> gist::Result<Vec<Generated>> {
        self.0.generate(t, o)
    }
    fn count_tokens(&mut self, m: Role, t: &[&str]) -> gist::Result<Vec<usize>> {
        self.0.count_tokens(m, t)
    }
}

#[tokio::test]
async fn a_model_panic_fails_one_request_and_the_server_lives_on() {
    let server = server(Panicky(FakeEngine::encoder_only())).await;
    let mut client = SummarizerClient::new(server.channel().await);
    let status = client
        .summarize(summarize_req("This input goes boom today."))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    assert!(
        status.message().contains("tensor shape mismatch"),
        "{}",
        status.message()
    );
    assert!(client
        .summarize(summarize_req("This input is fine today."))
        .await
        .is_ok());
    assert_eq!(
        health(&server, "gist.v1.Summarizer").await,
        ServingStatus::Serving
    );
}

#[tokio::test]
async fn reflection_lists_every_service_in_v1_and_v1alpha() {
    use tokio_stream::StreamExt;
    let server = server(FakeEngine::new()).await;
    let want = [
        "gist.v1.EntityExtractor",
        "gist.v1.Summarizer",
        "grpc.health.v1.Health",
    ];

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient as V1;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest as M1;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse as R1;
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(M1::ListServices(String::new())),
    };
    let mut client = V1::new(server.channel().await);
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(R1::ListServicesResponse(list)) =
        stream.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for w in want {
        assert!(
            names.iter().any(|n| n == w),
            "v1 lists {names:?}, missing {w}"
        );
    }

    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as V1a;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as Ma;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse as Ra;
    let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(Ma::ListServices(String::new())),
    };
    let mut client = V1a::new(server.channel().await);
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(Ra::ListServicesResponse(list)) =
        stream.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for w in want {
        assert!(
            names.iter().any(|n| n == w),
            "v1alpha lists {names:?}, missing {w}"
        );
    }
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_refused() {
    let server = server(FakeEngine::new()).await;
    let mut client =
        SummarizerClient::new(server.channel().await).max_encoding_message_size(64 * 1024 * 1024);
    let status = client
        .summarize(summarize_req(&"a".repeat(5 * 1024 * 1024)))
        .await
        .unwrap_err();
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    // The server is still fine afterwards.
    assert!(client
        .summarize(summarize_req("Some text here."))
        .await
        .is_ok());
}
