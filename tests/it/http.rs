//! The HTTP/JSON API through the real curl: every endpoint, every error class with its
//! exact status, the NDJSON batches, readiness, the OpenAPI document against the routes,
//! and the README's curl examples as written (only the address is the test server's).

use crate::common::{curl, until, Curl, TestServer};
use gist::engine::fake::{FakeEngine, Gate};
use gist::engine::{Embedding, Engine, EngineInfo, Generated, Generation, Role, Tagged};
use gist::metrics::Metrics;
use gist::server::{Limits, ServerArgs};
use gist::tasks::Task;
use gist::worker::{Worker, WorkerArgs};

fn worker(engine: impl Engine + Send + 'static, capacity: usize) -> Worker {
    Worker::spawn(
        move || Ok(Box::new(engine) as Box<dyn Engine>),
        WorkerArgs {
            queue_capacity: capacity,
            ..WorkerArgs::default()
        },
        Metrics::new(&Task::names()),
    )
}

async fn server_with(engine: impl Engine + Send + 'static, args: ServerArgs) -> TestServer {
    let worker = worker(engine, 16);
    worker.ready().await.unwrap();
    TestServer::start_http(worker, Limits::default(), args).await
}

async fn server(engine: impl Engine + Send + 'static) -> TestServer {
    server_with(engine, ServerArgs::default()).await
}

fn url(server: &TestServer, path: &str) -> String {
    format!("http://{}{path}", server.http_addr.unwrap())
}

async fn post(server: &TestServer, path: &str, body: &str, extra: &[&str]) -> Curl {
    let url = url(server, path);
    let mut args = vec![url.as_str(), "--data-binary", body];
    args.extend_from_slice(extra);
    curl(&args).await
}

/// An error answer: the status, the JSON body's gRPC code, and its message.
fn error(answer: &Curl) -> (u16, i64, String) {
    assert_eq!(
        answer.header("content-type"),
        Some("application/json"),
        "{answer:?}"
    );
    let body = answer.json();
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    (
        answer.status,
        body["code"].as_i64().unwrap(),
        body["message"].as_str().unwrap().to_string(),
    )
}

/// `text.slice(start, end)` as JavaScript computes it: UTF-16 code units.
fn utf16_slice(text: &str, start: &serde_json::Value, end: &serde_json::Value) -> String {
    let units: Vec<u16> = text.encode_utf16().collect();
    let (start, end) = (
        start.as_u64().unwrap() as usize,
        end.as_u64().unwrap() as usize,
    );
    String::from_utf16(&units[start..end]).unwrap()
}

#[tokio::test]
async fn every_endpoint_answers_proto3_json() {
    let server = server(FakeEngine::new()).await;
    let text = "🚀 He met Imran Khan in 👩‍🚀 Islamabad and “Li Keqiang” in 北京. They talked.";
    let request = serde_json::json!({"id": "e-1", "text": text, "labels": ["MISC"]}).to_string();

    let answer = post(
        &server,
        "/v1/entities",
        &request,
        &["-H", "X-Request-Id: http-1"],
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.header("x-request-id"), Some("http-1"));
    assert!(answer.header("x-total-time-ms").is_some());
    assert_eq!(answer.header("x-batch-size"), Some("1"));
    let body = answer.json();
    assert_eq!(body["id"], "e-1");
    assert_eq!(body["model"], "fake-ner");
    let entities = body["entities"].as_array().unwrap();
    let names: Vec<&str> = entities
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Imran Khan", "Islamabad", "Li Keqiang"]);
    for e in entities {
        // Proto field names, every field present, and the three units agree.
        assert_eq!(
            utf16_slice(text, &e["utf16_start"], &e["utf16_end"]),
            e["text"]
        );
        let bytes = &text.as_bytes()
            [e["byte_start"].as_u64().unwrap() as usize..e["byte_end"].as_u64().unwrap() as usize];
        assert_eq!(std::str::from_utf8(bytes).unwrap(), e["text"]);
        assert!(e["utf16_start"].as_u64() > e["start"].as_u64(), "{e}");
    }

    // Requests take either spelling of a field name, and enums by name.
    let summarize = serde_json::json!({
        "text": text, "maxKeyPoints": 1, "mode": "SUMMARY_MODE_EXTRACTIVE"
    })
    .to_string();
    let answer = post(&server, "/v1/summarize", &summarize, &[]).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let body = answer.json();
    assert_eq!(body["mode"], "SUMMARY_MODE_EXTRACTIVE");
    let key_points = body["key_points"].as_array().unwrap();
    assert_eq!(key_points.len(), 1);
    let k = &key_points[0];
    assert_eq!(
        utf16_slice(text, &k["utf16_start"], &k["utf16_end"]),
        k["text"]
    );
    assert_eq!(body["truncated"], false, "zero values are written: {body}");

    let answer = post(&server, "/v1/analyze", &request, &[]).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let body = answer.json();
    assert_eq!(body["id"], "e-1");
    assert!(body["summary"]["key_points"].is_array());
    assert!(body["entities"]["entities"].is_array());
    assert!(body["summary_entities"].is_array());
    assert_eq!(body["unsupported_entities"], 0);

    let health = curl(&[&url(&server, "/healthz")]).await;
    assert_eq!(
        (health.status, health.json()),
        (200, serde_json::json!({"status": "ok"}))
    );
    let ready = curl(&[&url(&server, "/readyz")]).await;
    assert_eq!(ready.status, 200);
    let ready = ready.json();
    assert_eq!(ready["status"], "SERVING");
    for service in [
        "gist.v1.Summarizer",
        "gist.v1.EntityExtractor",
        "gist.v1.Analyzer",
    ] {
        assert_eq!(ready["services"][service], "SERVING", "{ready}");
    }
    server.stop().await;
}

#[tokio::test]
async fn client_errors_have_their_exact_statuses() {
    let args = ServerArgs {
        max_message_bytes: 4096,
        ..ServerArgs::default()
    };
    let server = server_with(FakeEngine::new(), args).await;
    // (path, body, curl's extra arguments, HTTP status, gRPC code, message start)
    type Case<'a> = (&'a str, String, &'a [&'a str], u16, i64, &'a str);
    let cases: [Case; 7] = [
        (
            "/v1/summarize",
            r#"{"text": "  "}"#.into(),
            &[],
            400,
            3,
            "text: must not be empty",
        ),
        (
            "/v1/entities",
            r#"{"text": "x", "min_score": 2}"#.into(),
            &[],
            400,
            3,
            "min_score: is 2",
        ),
        (
            "/v1/summarize",
            r#"{"text": "x", "mode": "SUMMARY_MODE_NONE"}"#.into(),
            &[],
            400,
            3,
            "body: not a valid request message",
        ),
        (
            "/v1/analyze",
            r#"{"text": "x", "colour": 1}"#.into(),
            &[],
            400,
            3,
            "body: not a valid request message: unknown field",
        ),
        (
            "/v1/entities",
            "{not json".into(),
            &[],
            400,
            3,
            "body: not a valid request message",
        ),
        (
            "/v1/entities",
            r#"{"text": "x"}"#.into(),
            &["-H", "X-Request-Timeout-Ms: soon"],
            400,
            3,
            "X-Request-Timeout-Ms: must be",
        ),
        (
            "/v1/summarize",
            format!(r#"{{"text": "{}"}}"#, "x".repeat(5000)),
            &[],
            413,
            11,
            "body: ",
        ),
    ];
    for (path, body, extra, status, code, message) in cases {
        let answer = post(&server, path, &body, extra).await;
        let (got_status, got_code, got_message) = error(&answer);
        assert_eq!(
            (got_status, got_code),
            (status, code),
            "{path} {got_message}"
        );
        assert!(
            got_message.starts_with(message),
            "{got_message:?} vs {message:?}"
        );
        assert!(answer.header("x-request-id").is_some(), "{answer:?}");
    }
    let answer = curl(&[&url(&server, "/v1/nothing")]).await;
    assert_eq!(error(&answer).0, 404);
    assert_eq!(error(&answer).1, 5);
    let answer = curl(&[&url(&server, "/v1/summarize")]).await;
    assert_eq!((error(&answer).0, error(&answer).1), (405, 12));
    let answer = curl(&[&url(&server, "/readyz?service=gist.v1.Nope")]).await;
    assert_eq!((error(&answer).0, error(&answer).1), (404, 5));
    server.stop().await;
}

#[tokio::test]
async fn missing_models_are_412_and_503() {
    let server = server(FakeEngine::encoder_only()).await;
    let abstractive = r#"{"text": "One. Two.", "mode": "SUMMARY_MODE_ABSTRACTIVE"}"#;
    let answer = post(&server, "/v1/summarize", abstractive, &[]).await;
    let (status, code, _) = error(&answer);
    assert_eq!((status, code), (412, 9));
    let answer = post(&server, "/v1/entities", r#"{"text": "Imran Khan"}"#, &[]).await;
    let (status, code, _) = error(&answer);
    assert_eq!((status, code), (503, 14));
    // Readiness follows grpc.health.v1: the server is ready, the extractor is not.
    let ready = curl(&[&url(&server, "/readyz")]).await;
    assert_eq!(ready.status, 200);
    assert_eq!(
        ready.json()["services"]["gist.v1.EntityExtractor"],
        "NOT_SERVING"
    );
    let ready = curl(&[&url(&server, "/readyz?service=gist.v1.EntityExtractor")]).await;
    assert_eq!(
        (ready.status, ready.json()["status"].clone()),
        (503, "NOT_SERVING".into())
    );
    let ready = curl(&[&url(&server, "/readyz?service=gist.v1.Summarizer")]).await;
    assert_eq!(ready.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn loading_models_are_503_in_readiness_and_calls() {
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let worker = Worker::spawn(
        move || {
            let _ = release_rx.recv();
            Ok(Box::new(FakeEngine::new()) as Box<dyn Engine>)
        },
        WorkerArgs::default(),
        Metrics::new(&Task::names()),
    );
    let server =
        TestServer::start_http(worker.clone(), Limits::default(), ServerArgs::default()).await;
    let ready = curl(&[&url(&server, "/readyz")]).await;
    assert_eq!(
        (ready.status, ready.json()["status"].clone()),
        (503, "NOT_SERVING".into())
    );
    let answer = post(&server, "/v1/summarize", r#"{"text": "Hello there."}"#, &[]).await;
    let (status, code, message) = error(&answer);
    assert_eq!((status, code), (503, 14), "{message}");
    assert!(message.contains("loading"), "{message}");
    release_tx.send(()).unwrap();
    worker.ready().await.unwrap();
    crate::common::health_becomes(
        server.channel().await,
        "",
        tonic_health::pb::health_check_response::ServingStatus::Serving,
    )
    .await;
    let ready = curl(&[&url(&server, "/readyz")]).await;
    assert_eq!(ready.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn a_full_queue_is_429_with_retry_after_and_a_passed_deadline_408() {
    let gate = Gate::shut();
    let worker = worker(FakeEngine::new().gated(&gate), 1);
    worker.ready().await.unwrap();
    let server =
        TestServer::start_http(worker.clone(), Limits::default(), ServerArgs::default()).await;
    let body = r#"{"text": "Imran Khan met Li Keqiang."}"#;
    // The first call holds the model thread at the gate, the second fills the queue.
    let url_entities = url(&server, "/v1/entities");
    let first = tokio::spawn(curl_owned(vec![
        url_entities.clone(),
        "-d".into(),
        body.into(),
    ]));
    gate.arrived(1).await;
    let second = tokio::spawn(curl_owned(vec![
        url_entities.clone(),
        "-d".into(),
        body.into(),
    ]));
    until(|| worker.queue_depth(Task::Entities) == 1).await;
    let third = post(&server, "/v1/entities", body, &[]).await;
    let (status, code, message) = error(&third);
    assert_eq!((status, code), (429, 8), "{message}");
    assert_eq!(third.header("retry-after"), Some("1"));
    assert_eq!(third.header("grpc-retry-pushback-ms"), Some("250"));

    // A deadline that passes while the model is held: 408, and the work never runs.
    let late = post(
        &server,
        "/v1/summarize",
        r#"{"text": "One sentence."}"#,
        &["-H", "X-Request-Timeout-Ms: 50"],
    )
    .await;
    let (status, code, message) = error(&late);
    assert_eq!((status, code), (408, 4), "{message}");

    gate.open();
    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(second.await.unwrap().status, 200);
    let page = server.metrics().await;
    assert_eq!(
        crate::common::metric(
            &page,
            r#"gist_requests_total{code="RESOURCE_EXHAUSTED",rpc="ExtractEntities"}"#
        ),
        1.0,
        "HTTP calls count in the same metrics as gRPC"
    );
    assert_eq!(
        crate::common::metric(
            &page,
            r#"gist_requests_total{code="DEADLINE_EXCEEDED",rpc="Summarize"}"#
        ),
        1.0
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_http_calls_and_refuses_new_ones() {
    let gate = Gate::shut();
    let worker = worker(FakeEngine::new().gated(&gate), 4);
    worker.ready().await.unwrap();
    let mut server =
        TestServer::start_http(worker.clone(), Limits::default(), ServerArgs::default()).await;
    let held = tokio::spawn(curl_owned(vec![
        url(&server, "/v1/entities"),
        "-d".into(),
        r#"{"text": "He met Imran Khan."}"#.into(),
    ]));
    gate.arrived(1).await;
    server.signal_stop();
    // Health turns NOT_SERVING at once; the HTTP listener still answers while draining.
    let ready = url(&server, "/readyz");
    crate::common::until_async(|| {
        let ready = ready.clone();
        async move { curl(&[&ready]).await.status == 503 }
    })
    .await;
    let refused = post(&server, "/v1/summarize", r#"{"text": "Too late."}"#, &[]).await;
    let (status, code, message) = error(&refused);
    assert_eq!((status, code), (503, 14), "{message}");
    assert!(message.contains("shutting down"), "{message}");
    gate.open();
    let held = held.await.unwrap();
    assert_eq!(held.status, 200, "the accepted call is answered: {held:?}");
    server.stop().await;
}

async fn curl_owned(args: Vec<String>) -> Curl {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(&args).await
}

/// An engine that panics on one input, as a model runtime bug would.
struct Panicky(FakeEngine);

impl Engine for Panicky {
    fn info(&self) -> &EngineInfo {
        self.0.info()
    }
    fn embed(&mut self, s: &[&str]) -> gist::Result<Vec<Embedding>> {
        self.0.embed(s)
    }
    fn tag(&mut self, t: &[&str]) -> gist::Result<Vec<Tagged>> {
        if t.iter().any(|t| t.contains("boom")) {
            panic!("tensor shape mismatch");
        }
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
async fn a_model_failure_is_500_and_bearer_tokens_are_401() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "http-test-token-0123456789\n").unwrap();
    let args = ServerArgs {
        security: gist::server::security::SecurityArgs {
            auth_tokens: Some(tokens),
            ..Default::default()
        },
        ..ServerArgs::default()
    };
    let server = server_with(Panicky(FakeEngine::new()), args).await;
    let auth = "Authorization: Bearer http-test-token-0123456789";
    let boom = post(
        &server,
        "/v1/entities",
        r#"{"text": "Kaboom boom."}"#,
        &["-H", auth],
    )
    .await;
    let (status, code, message) = error(&boom);
    assert_eq!((status, code), (500, 13), "{message}");
    let fine = post(
        &server,
        "/v1/entities",
        r#"{"text": "Imran Khan."}"#,
        &["-H", auth],
    )
    .await;
    assert_eq!(fine.status, 200, "{fine:?}");

    let missing = post(&server, "/v1/entities", r#"{"text": "Imran Khan."}"#, &[]).await;
    let (status, code, message) = error(&missing);
    assert_eq!((status, code), (401, 16));
    assert!(message.starts_with("missing bearer token"), "{message}");
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Bearer realm=\"gist\"")
    );
    let wrong = post(
        &server,
        "/v1/entities:batch",
        r#"{"id": "a", "text": "Imran Khan."}"#,
        &["-H", "Authorization: Bearer nope"],
    )
    .await;
    assert_eq!(error(&wrong), (401, 16, "invalid bearer token".to_string()));
    // Probes need no token.
    assert_eq!(curl(&[&url(&server, "/readyz")]).await.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn batches_answer_in_order_with_item_errors_and_end_on_a_bad_line() {
    let server = server(FakeEngine::new()).await;
    let body = [
        r#"{"id": "a", "text": "He met Imran Khan and Li Keqiang."}"#,
        r#"{"id": "b", "text": " "}"#,
        "",
        r#"{"id": "c", "text": "Xi Jinping in Beijing.", "labels": ["PER"]}"#,
        r#"{"text": "no id"}"#,
        r#"{"id": "d", "text": "Gwadar."}"#,
    ]
    .join("\n");
    let answer = post(&server, "/v1/entities:batch", &body, &[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<serde_json::Value> = answer
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a", "b", "c", "", "d"]);
    assert_eq!(lines[0]["result"]["entities"][0]["text"], "Imran Khan");
    assert_eq!(lines[1]["error"]["code"], 3);
    assert_eq!(lines[1]["error"]["message"], "text: must not be empty");
    assert!(lines[2]["result"]["entities"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        lines[3]["error"]["code"], 3,
        "an item without an id: {}",
        lines[3]
    );
    assert!(lines[4]["result"].is_object());

    let broken = [
        "{\"id\": \"a\", \"text\": \"One.\"}",
        "{broken",
        "{\"id\": \"z\", \"text\": \"Never.\"}",
    ]
    .join("\n");
    for path in ["/v1/summarize:batch", "/v1/analyze:batch"] {
        let answer = post(&server, path, &broken, &[]).await;
        assert_eq!(answer.status, 200);
        let lines: Vec<serde_json::Value> = answer
            .body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{path}: {lines:?}");
        assert!(lines[0]["result"].is_object(), "{path}: {}", lines[0]);
        assert_eq!(lines[1]["id"], "");
        assert_eq!(lines[1]["error"]["code"], 3);
        let message = lines[1]["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("line 2: "), "{message}");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let server = server(FakeEngine::new()).await;
    let doc = curl(&[&url(&server, "/openapi.json")]).await;
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented: Vec<&str> = paths.keys().map(String::as_str).collect();
    documented.sort();
    let mut routes: Vec<&str> = gist::server::http::ROUTES.iter().map(|r| r.path).collect();
    routes.sort();
    assert_eq!(documented, routes);
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            // Each documented operation is served: a minimal valid call answers with a
            // status the document lists, never 404 or 405.
            let url = url(&server, path);
            let answer = match method.as_str() {
                "get" => curl(&[&url]).await,
                // The fake engine has no models.toml to reload: FAILED_PRECONDITION.
                "post" if path == "/v1/models:reload" => {
                    let answer = curl(&[&url, "--data-binary", "{}"]).await;
                    assert_eq!(answer.status, 412, "{answer:?}");
                    assert!(operation["responses"]["412"].is_object());
                    continue;
                }
                "post" => {
                    let body = if path.ends_with(":batch") {
                        r#"{"id": "1", "text": "Imran Khan."}"#
                    } else {
                        r#"{"text": "Imran Khan."}"#
                    };
                    curl(&[&url, "--data-binary", body]).await
                }
                other => panic!("unexpected method {other}"),
            };
            assert_eq!(answer.status, 200, "{method} {path}: {answer:?}");
            assert!(
                operation["responses"][answer.status.to_string()].is_object(),
                "{method} {path}"
            );
        }
    }
    server.stop().await;
}

/// The shell commands of the README's "Try it with curl" block, one per command (lines
/// ending in `\` joined), comments dropped.
fn readme_curl_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(crate::common::repo().join("README.md")).unwrap();
    let section = readme
        .split("## Try it with curl (HTTP/JSON)")
        .nth(1)
        .expect("the README has the curl section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block");
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                commands.push(std::mem::take(&mut current));
            }
        }
    }
    commands
}

#[tokio::test]
async fn the_readme_curl_examples_work_as_written() {
    let server = server(FakeEngine::new()).await;
    let commands = readme_curl_commands();
    assert_eq!(commands.len(), 7, "{commands:#?}");
    // Run where the README runs them (examples/ at hand), in a scratch folder so that the
    // files they write stay out of the repository.
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        crate::common::repo().join("examples"),
        dir.path().join("examples"),
    )
    .unwrap();
    let address = server.http_addr.unwrap().to_string();
    for command in commands {
        assert!(command.contains("127.0.0.1:8080"), "{command}");
        let command = command.replace("127.0.0.1:8080", &address);
        let out = tokio::process::Command::new("bash")
            .args(["-c", &format!("set -euo pipefail; {command}")])
            .current_dir(dir.path())
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let written = if command.contains("-o openapi.json") {
            std::fs::read_to_string(dir.path().join("openapi.json")).unwrap()
        } else {
            stdout.to_string()
        };
        // Every answer is JSON (NDJSON for the batch), and none is an error answer.
        let values: Vec<serde_json::Value> = if command.contains(":batch") {
            written
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        } else {
            vec![serde_json::from_str(&written)
                .unwrap_or_else(|e| panic!("{command}: {e}: {written}"))]
        };
        for value in &values {
            assert!(value.get("code").is_none(), "{command}: {value}");
        }
        if command.contains("/v1/summarize") {
            assert_eq!(values[0]["id"], "khan-li-call");
        }
        if command.contains(":batch") {
            assert_eq!(values.len(), 2);
            assert_eq!(values[1]["error"]["message"], "text: must not be empty");
        }
    }
    server.stop().await;
}

/// The frames of a gRPC-Web text body: base64 segments (each frame encoded on its own, so
/// padding may sit in the middle), decoded into `(flag, payload)` pairs.
fn grpc_web_text_frames(body: &str) -> Vec<(u8, Vec<u8>)> {
    use base64::Engine as _;
    let mut bytes = Vec::new();
    let mut segment = String::new();
    let mut chars = body.trim().chars().peekable();
    while let Some(c) = chars.next() {
        segment.push(c);
        if c == '=' && chars.peek() != Some(&'=') {
            bytes.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(&segment)
                    .unwrap(),
            );
            segment.clear();
        }
    }
    if !segment.is_empty() {
        bytes.extend(
            base64::engine::general_purpose::STANDARD
                .decode(&segment)
                .unwrap(),
        );
    }
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 5 {
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        frames.push((rest[0], rest[5..5 + len].to_vec()));
        rest = &rest[5 + len..];
    }
    assert!(rest.is_empty(), "a torn frame");
    frames
}

#[tokio::test]
async fn grpc_web_text_is_answered_on_the_grpc_port() {
    // What a browser's grpc-web client sends in its default text mode, over HTTP/1.1.
    use base64::Engine as _;
    use prost::Message as _;
    let server = server(FakeEngine::new()).await;
    let text = "🚀 He met Imran Khan in Islamabad.";
    let message = gist::pb::ExtractEntitiesRequest {
        text: text.into(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend((message.len() as u32).to_be_bytes());
    frame.extend(message);
    let body = base64::engine::general_purpose::STANDARD.encode(frame);
    let answer = curl(&[
        &format!(
            "http://{}/gist.v1.EntityExtractor/ExtractEntities",
            server.addr
        ),
        "--http1.1",
        "-H",
        "content-type: application/grpc-web-text",
        "-H",
        "accept: application/grpc-web-text",
        "-H",
        "x-grpc-web: 1",
        "--data-binary",
        &body,
    ])
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/grpc-web-text")),
        "{answer:?}"
    );
    let frames = grpc_web_text_frames(&answer.body);
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(frames[0].0, 0, "a data frame first");
    let response = gist::pb::ExtractEntitiesResponse::decode(&frames[0].1[..]).unwrap();
    let names: Vec<&str> = response.entities.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(names, ["Imran Khan", "Islamabad"]);
    let units: Vec<u16> = text.encode_utf16().collect();
    for e in &response.entities {
        let slice = &units[e.utf16_start as usize..e.utf16_end as usize];
        assert_eq!(String::from_utf16(slice).unwrap(), e.text);
    }
    assert_eq!(frames[1].0, 0x80, "then the trailers");
    let trailers = String::from_utf8(frames[1].1.clone()).unwrap();
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    server.stop().await;
}
