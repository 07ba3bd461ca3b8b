//! Test support: a server on port 0, the real binary as a child process, waits for events
//! (no sleeps), paths; and ([`tiny`], with libtorch) tiny rust-bert models built by the
//! tests themselves.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::json;

#[cfg(feature = "libtorch")]
mod tiny;
#[cfg(feature = "libtorch")]
pub use tiny::*;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Khan–Li article (a user's example, copied into the repo).
pub fn khan_li() -> String {
    std::fs::read_to_string(repo().join("tests/data/khan-li-call.txt"))
        .expect("tests/data/khan-li-call.txt")
}

pub(crate) fn write_json(path: &Path, value: &serde_json::Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
}

/// The grpcurl binary prepared by `make setup`.
pub fn grpcurl() -> PathBuf {
    let path = repo().join(".tools/bin/grpcurl");
    assert!(
        path.is_file(),
        "grpcurl is missing at {}: run `make setup`",
        path.display()
    );
    path
}

/// The default models folder, prepared by `make setup`.
pub fn default_models() -> PathBuf {
    let dir = repo().join("models");
    assert!(
        dir.join("all-MiniLM-L6-v2/model.safetensors").is_file(),
        "the default encoder is missing in {}: run `make setup`",
        dir.display()
    );
    dir
}

/// The default models (./models, prepared by `make setup`), each on the runtime
/// models.toml names, as `gist serve` loads them.
pub fn default_engine() -> Box<dyn gist::engine::Engine> {
    gist::engine::load(&gist::engine::EngineArgs {
        models: default_models(),
        ..cpu()
    })
    .unwrap()
}

/// Engine settings for the CPU.
pub fn cpu() -> gist::engine::EngineArgs {
    gist::engine::EngineArgs {
        device: gist::engine::Device::Cpu,
        ..Default::default()
    }
}

/// A gist server on 127.0.0.1:0 with its metrics listener on another ephemeral port (and,
/// from [`TestServer::start_http`], the HTTP/JSON API on a third), shut down when dropped.
pub struct TestServer {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Where `GET /metrics` is served.
    pub metrics_addr: std::net::SocketAddr,
    /// Where the HTTP/JSON API is served, when it is.
    pub http_addr: Option<std::net::SocketAddr>,
    shutdown_tx: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Serve `worker` with `limits` on an ephemeral port.
    pub async fn start(worker: gist::worker::Worker, limits: gist::server::Limits) -> TestServer {
        Self::start_with(worker, limits, gist::server::ServerArgs::default()).await
    }

    /// Serve the real default models (./models, prepared by `make setup`) once loaded.
    pub async fn with_default_models() -> TestServer {
        let model_args = gist::engine::EngineArgs {
            models: default_models(),
            ..cpu()
        };
        let worker = gist::worker::Worker::spawn(
            move || gist::engine::load(&model_args),
            gist::worker::WorkerArgs::default(),
            gist::metrics::Metrics::new(&gist::tasks::Task::names()),
        );
        worker.ready().await.unwrap();
        Self::start(worker, gist::server::Limits::default()).await
    }

    /// Serve `worker` with `limits` and transport settings `args`.
    pub async fn start_with(
        worker: gist::worker::Worker,
        limits: gist::server::Limits,
        args: gist::server::ServerArgs,
    ) -> TestServer {
        Self::start_listeners(worker, limits, args, false).await
    }

    /// [`TestServer::start_with`], with the HTTP/JSON API on another ephemeral port.
    pub async fn start_http(
        worker: gist::worker::Worker,
        limits: gist::server::Limits,
        args: gist::server::ServerArgs,
    ) -> TestServer {
        Self::start_listeners(worker, limits, args, true).await
    }

    async fn start_listeners(
        worker: gist::worker::Worker,
        limits: gist::server::Limits,
        args: gist::server::ServerArgs,
        http: bool,
    ) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_listener = if http {
            Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
        } else {
            None
        };
        let http_addr = http_listener.as_ref().map(|l| l.local_addr().unwrap());
        let addr = listener.local_addr().unwrap();
        let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_addr = metrics_listener.local_addr().unwrap();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let metrics = worker.metrics();
        let state = gist::server::AppState::new(worker, limits, &args);
        tokio::spawn(gist::metrics::serve(
            metrics_listener,
            metrics,
            std::future::pending(),
        ));
        let security = gist::server::security::Security::load(&args.security).unwrap();
        let task = tokio::spawn(async move {
            gist::server::serve_listeners(listener, http_listener, state, args, security, async {
                let _ = shutdown_rx.await;
            })
            .await
            .unwrap();
        });
        TestServer {
            addr,
            metrics_addr,
            http_addr,
            shutdown_tx: Some(shutdown_tx),
            task: Some(task),
        }
    }

    /// The metrics page, as a scraper sees it.
    pub async fn metrics(&self) -> String {
        http_get(self.metrics_addr, "/metrics").await
    }

    /// A client channel to the server (the listener is bound, so no waiting is needed).
    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// Signal the shutdown (as SIGTERM does) without waiting for the drain.
    pub fn signal_stop(&mut self) {
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
    }

    /// Stop the server and wait for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
    }
}

/// A plain HTTP/1.1 GET; the body of the answer (panics unless it is 200).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nhost: gist\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// What curl got: the status, the headers (names lower-cased) and the body.
#[derive(Debug)]
pub struct Curl {
    /// The HTTP status.
    pub status: u16,
    /// The response headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl Curl {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Run the real curl with `args` (plus `-sS -i`) and parse what it printed.
pub async fn curl(args: &[&str]) -> Curl {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-i", "--max-time", "60"])
        .args(args)
        .current_dir(repo())
        .output()
        .await
        .expect("curl is installed (scripts/test-tools.sh)");
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_http(&String::from_utf8_lossy(&out.stdout))
}

/// An HTTP/1.1 response as `curl -i` prints it (interim 100 Continue answers skipped).
pub fn parse_http(mut text: &str) -> Curl {
    loop {
        let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
        let mut lines = head.lines();
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        if status == 100 {
            text = body;
            continue;
        }
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        return Curl {
            status,
            headers,
            body: body.to_string(),
        };
    }
}

/// The value of a metric line `name{labels} value` in a Prometheus text page (0 when absent).
pub fn metric(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// Replace a BERT folder's `vocab.txt` and `tokenizer_config.json` by the `tokenizer.json`
/// the `tokenizers` library writes for the same WordPiece vocabulary (lower-casing).
pub fn tokenizer_json_only(dir: &Path) {
    let vocab = std::fs::read_to_string(dir.join("vocab.txt")).unwrap();
    let map: serde_json::Map<String, serde_json::Value> = vocab
        .lines()
        .enumerate()
        .map(|(i, t)| (t.to_string(), json!(i)))
        .collect();
    let added: Vec<serde_json::Value> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"id": i, "content": t, "special": true}))
        .collect();
    write_json(
        &dir.join("tokenizer.json"),
        &json!({
            "version": "1.0",
            "added_tokens": added,
            "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                           "strip_accents": null, "lowercase": true},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": 100, "vocab": map}
        }),
    );
    std::fs::remove_file(dir.join("vocab.txt")).unwrap();
    std::fs::remove_file(dir.join("tokenizer_config.json")).unwrap();
}

/// Run the real `gist` binary with `args`, extra environment `env` and `stdin`, with no
/// Hugging Face or gist settings inherited from the caller.
pub fn gist(args: &[&str], env: &[(&str, &str)], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gist"));
    for var in [
        "HF_TOKEN",
        "HF_ENDPOINT",
        "HF_HOME",
        "GIST_MODELS",
        "GIST_ENGINE",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    let mut child = command
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The stdout and stderr of a run, for assertion messages.
pub fn outputs(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The health of `gist.v1.Summarizer` as a load balancer's probe sees it.
pub async fn summarizer_health(
    channel: tonic::transport::Channel,
) -> tonic_health::pb::health_check_response::ServingStatus {
    use tonic_health::pb::health_check_response::ServingStatus;
    let status = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: "gist.v1.Summarizer".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    ServingStatus::try_from(status).unwrap()
}

/// The real `gist serve` binary as a child process on 127.0.0.1:0 (killed when dropped).
pub struct ServerProcess {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    child: tokio::process::Child,
}

impl ServerProcess {
    /// Start `gist serve` with `args` (plus the listen address and JSON logs) and wait
    /// until gist.v1.Summarizer is SERVING.
    pub async fn start(args: &[&str]) -> ServerProcess {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gist"))
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .env("RUST_LOG", "info")
            .env_remove("GIST_MODELS")
            .env_remove("GIST_ENGINE")
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("gist serve exited before listening");
            let json: serde_json::Value = serde_json::from_str(&line).unwrap();
            let fields = &json["fields"];
            if fields["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("listening")
            {
                break fields["address"].as_str().unwrap().to_string();
            }
        };
        // Keep reading so the server never blocks on a full stderr pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let url = format!("http://{addr}");
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        health_becomes(
            channel,
            "gist.v1.Summarizer",
            tonic_health::pb::health_check_response::ServingStatus::Serving,
        )
        .await;
        ServerProcess { url, child }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the server runs")
    }

    /// SIGKILL: the process dies at once, mid-request, as in a crash.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }
}

/// Wait until the health of `service` is `status`, as a load balancer's watch sees it
/// (`grpc.health.v1.Health/Watch`: the server pushes each change; no polling).
pub async fn health_becomes(
    channel: tonic::transport::Channel,
    service: &str,
    status: tonic_health::pb::health_check_response::ServingStatus,
) {
    let mut updates = tonic_health::pb::health_client::HealthClient::new(channel)
        .watch(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let watched = async {
        while let Some(update) = updates.message().await.unwrap() {
            if update.status == status as i32 {
                return;
            }
        }
        panic!("the health watch of {service} ended before it was {status:?}");
    };
    tokio::time::timeout(HANG_GUARD, watched)
        .await
        .unwrap_or_else(|_| panic!("{service} never became {status:?}"));
}

/// How long a wait for an event may take before a test fails instead of hanging. A guard,
/// not a speed assertion: the events come in milliseconds.
pub const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(60);

/// Wait until `condition` holds, checking again each time the runtime has run other work
/// (no sleep, no timing); fails after [`HANG_GUARD`].
pub async fn until(mut condition: impl FnMut() -> bool) {
    let guard = std::time::Instant::now() + HANG_GUARD;
    while !condition() {
        assert!(
            std::time::Instant::now() < guard,
            "the condition never held"
        );
        tokio::task::yield_now().await;
    }
}

/// [`until`] for a condition that has to ask over the network (a metrics page).
pub async fn until_async<F, Fut>(mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let guard = std::time::Instant::now() + HANG_GUARD;
    while !condition().await {
        assert!(
            std::time::Instant::now() < guard,
            "the condition never held"
        );
        tokio::task::yield_now().await;
    }
}
