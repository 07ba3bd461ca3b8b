//! The real consumers of gist's HTTP side, each against a live server: Debian's Prometheus
//! scraping `GET /metrics` and answering PromQL, schemathesis fuzzing the HTTP API from its
//! own `/openapi.json`, and Node.js clients (gRPC with @grpc/grpc-js, gRPC-Web with
//! @improbable-eng/grpc-web) slicing texts by UTF-16 offsets with `String.prototype.slice`.
//! Prometheus comes from scripts/test-tools.sh; schemathesis and the npm packages from
//! scripts/api-clients.sh.

use std::time::Duration;

use crate::common::{curl, repo, until, TestServer, HANG_GUARD};
use gist::engine::fake::{FakeEngine, Gate};
use gist::engine::Engine;
use gist::metrics::Metrics;
use gist::server::{Limits, ServerArgs};
use gist::tasks::Task;
use gist::worker::{Worker, WorkerArgs};
use tokio::io::{AsyncBufReadExt, BufReader};

async fn server(engine: impl Engine + Send + 'static) -> (Worker, TestServer) {
    let worker = Worker::spawn(
        move || Ok(Box::new(engine) as Box<dyn Engine>),
        WorkerArgs::default(),
        Metrics::new(&Task::names()),
    );
    worker.ready().await.unwrap();
    let server =
        TestServer::start_http(worker.clone(), Limits::default(), ServerArgs::default()).await;
    (worker, server)
}

/// TCP ports process `pid` listens on, read from /proc (the socket inodes of its open files
/// matched with the kernel's table of listening sockets).
fn listening_ports(pid: u32) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().into_owned();
                    target
                        .strip_prefix("socket:[")
                        .and_then(|t| t.strip_suffix(']'))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEX_IP:HEX_PORT; state 0A is LISTEN; inode is field 9.
            if fields.len() > 9 && fields[3] == "0A" && inodes.iter().any(|i| i == fields[9]) {
                if let Some(port) = fields[1].rsplit(':').next() {
                    ports.push(u16::from_str_radix(port, 16).unwrap());
                }
            }
        }
    }
    ports
}

/// The value of a PromQL query with one result (None while there is none).
async fn promql(prometheus: &str, query: &str) -> Option<f64> {
    let answer = curl(&[
        "-G",
        &format!("http://{prometheus}/api/v1/query"),
        "--data-urlencode",
        &format!("query={query}"),
    ])
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let body = answer.json();
    assert_eq!(body["status"], "success", "{body}");
    let result = body["data"]["result"].as_array()?;
    let value = result.first()?["value"][1].as_str()?;
    value.parse().ok()
}

/// Ask Prometheus `query` until its value is `want` (each scrape is a second apart).
async fn promql_becomes(prometheus: &str, query: &str, want: f64) {
    let guard = std::time::Instant::now() + HANG_GUARD;
    loop {
        if promql(prometheus, query).await == Some(want) {
            return;
        }
        assert!(
            std::time::Instant::now() < guard,
            "Prometheus never saw {query} == {want}"
        );
        // Prometheus has no way to announce a scrape: ask again after a fraction of the
        // scrape interval.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_request_counter_and_the_queue_gauge() {
    let gate = Gate::shut();
    let (worker, server) = server(FakeEngine::new().gated(&gate)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: gist\n    static_configs:\n      - targets: ['{}']\n",
            server.metrics_addr
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .args(["--web.listen-address=127.0.0.1:0", "--log.level=info"])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus is installed (scripts/test-tools.sh)");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let ready = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("Server is ready to receive web requests") {
                return;
            }
        }
        panic!("prometheus exited before it was ready");
    };
    tokio::time::timeout(HANG_GUARD, ready).await.unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let ports = listening_ports(child.id().unwrap());
    assert_eq!(ports.len(), 1, "{ports:?}");
    let prometheus = format!("127.0.0.1:{}", ports[0]);

    promql_becomes(&prometheus, r#"up{job="gist"}"#, 1.0).await;
    // One call held by the model, one waiting behind it: the queue gauge reads 1.
    let url = format!("http://{}/v1/entities", server.http_addr.unwrap());
    let body = r#"{"text": "He met Imran Khan."}"#;
    let call = || {
        let url = url.clone();
        tokio::spawn(async move { curl(&[&url, "-d", body]).await })
    };
    let first = call();
    gate.arrived(1).await;
    let second = call();
    until(|| worker.queue_depth(Task::Entities) == 1).await;
    promql_becomes(
        &prometheus,
        r#"gist_queue_depth{queue="entities",lane="interactive"}"#,
        1.0,
    )
    .await;
    gate.open();
    for call in [first, second] {
        assert_eq!(call.await.unwrap().status, 200);
    }
    promql_becomes(
        &prometheus,
        r#"sum(gist_requests_total{rpc="ExtractEntities",code="OK"})"#,
        2.0,
    )
    .await;
    promql_becomes(
        &prometheus,
        r#"sum(gist_queue_depth{queue="entities"})"#,
        0.0,
    )
    .await;
    // A histogram's buckets survive the exposition too: one batch of at most 2 requests.
    let batches = promql(
        &prometheus,
        r#"sum(gist_batch_size_count{queue="entities"})"#,
    )
    .await
    .unwrap();
    assert!((1.0..=2.0).contains(&batches), "{batches}");
    child.kill().await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_nonconforming_answer() {
    let venv = repo().join(".tools/api-venv/bin/schemathesis");
    assert!(venv.is_file(), "run scripts/api-clients.sh first");
    let (_worker, server) = server(FakeEngine::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let out = tokio::process::Command::new(&venv)
        .arg("run")
        .arg(format!("http://{}/openapi.json", server.http_addr.unwrap()))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
            "--max-examples",
            "50",
            "--seed",
            "1",
            "--no-color",
            "--report",
            "json",
        ])
        .arg("--report-json-path")
        .arg(&report)
        // The NDJSON endpoints' request serializer and answer reader.
        .env("PYTHONPATH", repo().join("tests/schemathesis"))
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(
        report["operations"]["tested"], 10,
        "{}",
        report["operations"]
    );
    let cases = report["test_cases"]["generated"].as_u64().unwrap();
    assert!(cases > 100, "{}", report["test_cases"]);
    assert_eq!(report["test_cases"]["with_failures"], 0);
    assert!(
        report["errors"].as_array().unwrap().is_empty(),
        "{}",
        report["errors"]
    );
    eprintln!("schemathesis: {cases} cases over 10 operations, none failed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_clients_slice_by_utf16_offsets_over_grpc_and_grpc_web() {
    assert!(
        repo()
            .join("tests/node/node_modules/@grpc/grpc-js")
            .is_dir(),
        "run scripts/api-clients.sh first"
    );
    let (_worker, server) = server(FakeEngine::new()).await;
    let out = tokio::process::Command::new("node")
        .arg("tests/node/offsets.mjs")
        .arg(server.addr.to_string())
        .current_dir(repo())
        .output()
        .await
        .expect("node is installed (scripts/test-tools.sh)");
    assert!(
        out.status.success(),
        "the Node.js clients failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["grpc"]["entities"].as_u64().unwrap() > 10,
        "{report}"
    );
    assert!(
        report["grpc"]["key_points"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(
        report["grpc"]["code_point_slices_wrong"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert_eq!(report["grpc_web"]["entities"], report["grpc"]["entities"]);
    server.stop().await;
}
