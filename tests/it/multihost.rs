//! Replicas on separate hosts behind a real gRPC balancer: three hosts in network
//! namespaces made by the test (iproute2: namespaces, veth pairs, a bridge), one real
//! `gist serve` on each, and HAProxy (Debian's, with deploy/haproxy/haproxy.cfg as
//! shipped) on a fourth, the client host, balancing HTTP/2 calls with gRPC health checks.
//!
//! Under a steady load through the balancer every replica gets calls (counted from each
//! replica's own /metrics). Then one host is unplugged from the bridge and another
//! replica gets SIGTERM and drains, mid-run: every call still ends OK, some after the
//! client retried a retryable code, and nothing hangs. Then `gist batch` runs 600 items,
//! once through the balancer and once over `dns:///` (a name with the three addresses,
//! from an /etc/hosts that only the client host sees), under the same two faults, and
//! writes every id exactly once.
//!
//! The fake engine (`--engine fake`, 20 ms a call, one at a time) stands in for the
//! models: what is tested is the transport, not the summaries. All traffic stays inside
//! the test's namespaces (198.18.14.0/24). Needs root, haproxy and iproute2
//! (scripts/test-tools.sh).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gist::pb;
use gist::pb::summarizer_client::SummarizerClient;
use tokio::process::Child;
use tonic::transport::Channel;
use tonic::Code;

use crate::common;
use crate::netns::{require_root, Lan};

const REPLICAS: [&str; 3] = ["h1", "h2", "h3"];
const GRPC_PORT: u16 = 50051;
const METRICS_PORT: u16 = 9090;
/// Where HAProxy listens on the client host.
const BALANCER: &str = "127.0.0.1:50051";
/// The name that resolves to the three replicas on the client host.
const NAME: &str = "gist-replicas";
const FAKE: &[&str] = &["--engine", "fake", "--fake-delay-ms", "20"];
const OK_SUMMARIZE: &str = r#"gist_requests_total{code="OK",rpc="Summarize"}"#;
/// Items of `gist batch` (SummarizeStream) answered OK.
const OK_STREAM_ITEMS: &str = r#"gist_requests_total{code="OK",rpc="SummarizeStream"}"#;

#[test]
fn replicas_on_three_hosts_behind_haproxy_survive_a_cut_host_and_a_drain() {
    require_root("replicas_on_three_hosts_behind_haproxy_survive_a_cut_host_and_a_drain");
    let lan = Lan::new("mh", &["client", "h1", "h2", "h3"]);
    let names: String = REPLICAS
        .iter()
        .map(|h| format!("{} {NAME}\n", lan.addr(h)))
        .collect();
    lan.set_hosts_file("client", &names);
    // The system resolver on the client host (and only there) answers the name with all three.
    let resolved = lan
        .command("client", "getent")
        .args(["ahostsv4", NAME])
        .output()
        .unwrap();
    let resolved = String::from_utf8_lossy(&resolved.stdout);
    for host in REPLICAS {
        assert!(
            resolved.contains(&lan.addr(host).to_string()),
            "{NAME}: {resolved}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // This thread, and the runtime's threads it starts, live on the client host.
                lan.enter("client");
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(scenario(&lan, dir.path()));
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    });
}

async fn scenario(lan: &Lan, dir: &Path) {
    // h3 starts without its models (a folder that does not exist): it listens, but its
    // health says NOT_SERVING, and the balancer's gRPC health check must take it out.
    let mut fleet = Fleet::start(lan, dir, &["h1", "h2"]).await;
    fleet.spawn("h3", &["--engine", "rust-bert", "--models", "/nonexistent"]);
    // Listening before the balancer starts, so that its first checks reach it.
    bounded("h3 to listen, unready", 30, async {
        loop {
            if let Ok(channel) = try_connect(fleet.grpc("h3")).await {
                if let Ok(status) = health(channel).await {
                    assert_eq!(
                        status,
                        tonic_health::pb::health_check_response::ServingStatus::NotServing
                    );
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let haproxy = start_haproxy(lan, dir);
    let channel = connect(BALANCER.parse().unwrap()).await;
    let haproxy_log = dir.join("haproxy.log");
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(&haproxy_log).unwrap_or_default();
        if log.contains("replica3 is DOWN, reason: Layer7") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "HAProxy's health check did not take the unready h3 out in 30 s:\n{log}\nh3: {}",
            std::fs::read_to_string(dir.join("h3.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fleet.restart("h3").await;
    fleet.wait_serving(&["h3"]).await;
    fleet.wait_balanced("h3", &channel).await;

    // 1. A steady load, every host up: calls reach all three replicas.
    let before = fleet.counts(&REPLICAS).await;
    let stats = Load::new(channel.clone(), 300).run().await;
    stats.assert_all_ok("steady load");
    let after = fleet.counts(&REPLICAS).await;
    for host in REPLICAS {
        assert!(
            after[host] > before[host],
            "no call reached {host} through the balancer: {before:?} -> {after:?}"
        );
    }

    // 2. The same load, with h3 unplugged and h2 draining mid-run.
    let load = Load::new(channel.clone(), 900);
    let progress = load.progress.clone();
    let running = tokio::spawn(load.run());
    wait_until("150 calls of the second load", || {
        progress.load(Ordering::Relaxed) >= 150
    })
    .await;
    let h1_before = fleet.counts(&["h1"]).await["h1"];
    lan.set_link("h3", false);
    wait_until("400 calls of the second load", || {
        progress.load(Ordering::Relaxed) >= 400
    })
    .await;
    fleet.terminate("h2");
    let stats = bounded("the second load", 120, running).await.unwrap();
    stats.assert_all_ok("load with h3 cut off and h2 draining");
    fleet.assert_drained("h2").await;
    let h1_after = fleet.counts(&["h1"]).await["h1"];
    assert!(h1_after > h1_before, "h1 took no calls after the faults");
    eprintln!(
        "multihost: 900 calls OK with h3 cut and h2 drained: {} attempts, retried codes {:?}",
        stats.attempts, stats.retried
    );

    // 3. gist batch, 600 items, through the balancer and then over dns:///, each time
    //    under the same two faults.
    let input = dir.join("articles.jsonl");
    std::fs::write(&input, articles(600)).unwrap();
    let through_balancer = format!("http://{BALANCER}");
    for (label, endpoints) in [
        // Three streams through the balancer, so that it has calls to spread.
        ("balancer", [through_balancer.as_str(); 3].join(",")),
        ("dns", format!("dns:///{NAME}:{GRPC_PORT}")),
    ] {
        lan.set_link("h3", true);
        fleet.restart("h2").await;
        fleet.wait_serving(&REPLICAS).await;
        fleet.wait_balanced("h2", &channel).await;
        fleet.wait_balanced("h3", &channel).await;
        let output = dir.join(format!("out-{label}.jsonl"));
        batch_under_faults(
            lan,
            &mut fleet,
            &input,
            &output,
            &endpoints,
            dir,
            label == "dns",
        )
        .await;
        let ids = ids_exactly_once(&output, 600, label);
        assert_eq!(ids, (0..600).map(article_id).collect::<Vec<_>>(), "{label}");
    }
    drop(haproxy);
}

/// Run `gist batch` on the client host; unplug h3 after 100 results and SIGTERM h2 after
/// 250; it must finish with every item done. With `every_replica`, each replica must have
/// taken items before the faults.
async fn batch_under_faults(
    lan: &Lan,
    fleet: &mut Fleet<'_>,
    input: &Path,
    output: &Path,
    endpoints: &str,
    dir: &Path,
    every_replica: bool,
) {
    let log = dir.join(format!(
        "{}.log",
        output.file_stem().unwrap().to_string_lossy()
    ));
    let before = fleet.series(&REPLICAS, OK_STREAM_ITEMS).await;
    let mut child = lan
        .tokio_command("client", env!("CARGO_BIN_EXE_gist"))
        .args(["batch", "--task", "summarize", "--input"])
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(["--endpoint", endpoints])
        .args(["--in-flight", "8", "--idle-timeout-secs", "3"])
        .args(["--retry-base-ms", "50", "--retry-max-ms", "1000"])
        .args(["--max-attempts", "20", "--give-up-secs", "60"])
        .args(["--log-every-secs", "0"])
        .env("RUST_LOG", "warn")
        .env_remove("GIST_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_until("100 results", || lines(output) >= 100).await;
    if every_replica {
        // Over dns:///, one lane per address of the name: all three took items.
        let now = fleet.series(&REPLICAS, OK_STREAM_ITEMS).await;
        for host in REPLICAS {
            assert!(
                now[host] > before[host],
                "{host} took no item: {before:?} -> {now:?}"
            );
        }
    }
    lan.set_link("h3", false);
    wait_until("250 results", || lines(output) >= 250).await;
    fleet.terminate("h2");
    let status = bounded("gist batch", 180, child.wait()).await.unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.success(),
        "gist batch over {endpoints}: {status}\n{stderr}"
    );
    assert!(
        stderr.contains("gist batch: 600 done, 0 skipped (already in the output), 0 failed"),
        "{stderr}"
    );
    fleet.assert_drained("h2").await;
}

/// The three replicas, each on its own host.
struct Fleet<'a> {
    lan: &'a Lan,
    dir: PathBuf,
    children: HashMap<&'static str, Child>,
}

impl<'a> Fleet<'a> {
    /// Start a replica on each of `hosts` and wait until they are SERVING.
    async fn start(lan: &'a Lan, dir: &Path, hosts: &[&'static str]) -> Fleet<'a> {
        let mut fleet = Fleet {
            lan,
            dir: dir.to_path_buf(),
            children: HashMap::new(),
        };
        for host in hosts {
            fleet.spawn(host, &[]);
        }
        fleet.wait_serving(hosts).await;
        fleet
    }

    /// `gist serve` on `host`, one call at a time: with the fake engine at 20 ms a call,
    /// or with the model flags `engine` when not empty.
    fn spawn(&mut self, host: &'static str, engine: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{host}.log")))
            .unwrap();
        let child = self
            .lan
            .tokio_command(host, env!("CARGO_BIN_EXE_gist"))
            .arg("serve")
            .args(if engine.is_empty() { FAKE } else { engine })
            .args(["--max-batch", "1", "--drain-timeout-secs", "10"])
            .args(["--listen", &format!("0.0.0.0:{GRPC_PORT}")])
            .args(["--metrics-listen", &format!("0.0.0.0:{METRICS_PORT}")])
            .env("RUST_LOG", "warn")
            .env_remove("GIST_MODELS")
            .env_remove("GIST_ENGINE")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.children.insert(host, child);
    }

    async fn restart(&mut self, host: &'static str) {
        if let Some(mut old) = self.children.remove(host) {
            let _ = old.kill().await;
        }
        self.spawn(host, &[]);
    }

    fn grpc(&self, host: &str) -> SocketAddr {
        SocketAddr::new(self.lan.addr(host).into(), GRPC_PORT)
    }

    /// Wait until each host's gist.v1.Summarizer is SERVING (asked directly).
    async fn wait_serving(&self, hosts: &[&str]) {
        for host in hosts {
            let addr = self.grpc(host);
            bounded(&format!("{host} SERVING"), 30, async {
                loop {
                    if let Ok(channel) = try_connect(addr).await {
                        if let Ok(status) = health(channel).await {
                            if status
                                == tonic_health::pb::health_check_response::ServingStatus::Serving
                            {
                                return;
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await;
        }
    }

    /// Wait until the balancer sends calls to `host` again (after a restart or a reconnect):
    /// call through it until `host`'s own count moves.
    async fn wait_balanced(&self, host: &str, channel: &Channel) {
        let start = self.counts(&[host]).await[host];
        let mut client = SummarizerClient::new(channel.clone());
        bounded(&format!("the balancer sending to {host}"), 30, async {
            while self.counts(&[host]).await[host] <= start {
                let _ = client.summarize(request("probe")).await;
            }
        })
        .await;
    }

    /// Each host's count of Summarize calls answered OK, from its /metrics.
    async fn counts(&self, hosts: &[&str]) -> BTreeMap<String, f64> {
        self.series(hosts, OK_SUMMARIZE).await
    }

    /// Each host's value of `series`, from its /metrics.
    async fn series(&self, hosts: &[&str], series: &str) -> BTreeMap<String, f64> {
        let mut counts = BTreeMap::new();
        for host in hosts {
            let addr = SocketAddr::new(self.lan.addr(host).into(), METRICS_PORT);
            let page = bounded(
                &format!("{host}'s /metrics"),
                10,
                common::http_get(addr, "/metrics"),
            )
            .await;
            counts.insert(host.to_string(), common::metric(&page, series));
        }
        counts
    }

    /// SIGTERM: the replica drains and exits.
    fn terminate(&self, host: &str) {
        let pid = self.children[host].id().expect("the replica is running");
        // SAFETY: plain kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    }

    /// The replica that got SIGTERM exits 0 within its drain timeout.
    async fn assert_drained(&mut self, host: &str) {
        let child = self.children.get_mut(host).unwrap();
        let status = bounded(&format!("{host} to drain and exit"), 30, child.wait())
            .await
            .unwrap();
        assert!(
            status.success(),
            "{host} exited with {status} after SIGTERM"
        );
    }
}

/// HAProxy on the client host with deploy/haproxy/haproxy.cfg, exactly as shipped.
fn start_haproxy(lan: &Lan, dir: &Path) -> Child {
    let haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("haproxy is not installed: scripts/test-tools.sh installs it");
    let config = common::repo().join("deploy/haproxy/haproxy.cfg");
    // Check the file first: a clear message beats a balancer that never listens.
    let check = lan
        .command("client", haproxy)
        .arg("-c")
        .arg("-f")
        .arg(&config)
        .envs(haproxy_env(lan))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy -c: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    lan.tokio_command("client", haproxy)
        .arg("-db")
        .arg("-f")
        .arg(&config)
        .envs(haproxy_env(lan))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("haproxy.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

fn haproxy_env(lan: &Lan) -> Vec<(String, String)> {
    let mut env = vec![("GIST_LISTEN".to_string(), BALANCER.to_string())];
    for (i, host) in REPLICAS.iter().enumerate() {
        env.push((
            format!("GIST_REPLICA_{}", i + 1),
            format!("{}:{GRPC_PORT}", lan.addr(host)),
        ));
    }
    env
}

/// A load of `total` Summarize calls from 8 concurrent callers on one channel, each call
/// retried on a retryable code (as a well-behaved client does) with a 2 s deadline.
struct Load {
    channel: Channel,
    total: usize,
    progress: Arc<AtomicUsize>,
}

#[derive(Debug, Default)]
struct LoadStats {
    ok: usize,
    attempts: usize,
    /// Retryable failures seen (and retried), by code.
    retried: BTreeMap<String, usize>,
    /// Calls that did not end OK.
    failed: Vec<String>,
}

impl LoadStats {
    fn assert_all_ok(&self, what: &str) {
        assert!(
            self.failed.is_empty(),
            "{what}: {} calls failed, e.g. {:?} ({self:?})",
            self.failed.len(),
            &self.failed[..self.failed.len().min(5)]
        );
    }
}

const ATTEMPTS: usize = 12;

impl Load {
    fn new(channel: Channel, total: usize) -> Load {
        Load {
            channel,
            total,
            progress: Arc::new(AtomicUsize::new(0)),
        }
    }

    async fn run(self) -> LoadStats {
        let next = Arc::new(AtomicUsize::new(0));
        let stats = Arc::new(Mutex::new(LoadStats::default()));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (next, stats, progress) = (next.clone(), stats.clone(), self.progress.clone());
            let mut client = SummarizerClient::new(self.channel.clone());
            let total = self.total;
            workers.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return;
                    }
                    let id = format!("call-{i}");
                    let mut outcome = Err("no attempt".to_string());
                    for attempt in 1..=ATTEMPTS {
                        stats.lock().unwrap().attempts += 1;
                        let call = client.summarize(request(&id));
                        let code = match tokio::time::timeout(Duration::from_secs(2), call).await {
                            Ok(Ok(response)) if response.get_ref().id == id => {
                                outcome = Ok(());
                                break;
                            }
                            Ok(Ok(response)) => {
                                outcome = Err(format!("answered for {:?}", response.get_ref().id));
                                break;
                            }
                            Ok(Err(status)) => status.code(),
                            Err(_) => Code::DeadlineExceeded,
                        };
                        let name = format!("{code:?}");
                        outcome = Err(name.clone());
                        if !matches!(
                            code,
                            Code::Unavailable | Code::ResourceExhausted | Code::DeadlineExceeded
                        ) {
                            break;
                        }
                        *stats.lock().unwrap().retried.entry(name).or_default() += 1;
                        let backoff = 25u64 << attempt.min(5);
                        tokio::time::sleep(Duration::from_millis(backoff)).await;
                    }
                    let mut stats = stats.lock().unwrap();
                    match outcome {
                        Ok(()) => stats.ok += 1,
                        Err(why) => stats.failed.push(format!("{id}: {why}")),
                    }
                    progress.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        while let Some(done) = workers.join_next().await {
            done.unwrap();
        }
        Arc::try_unwrap(stats).unwrap().into_inner().unwrap()
    }
}

fn request(id: &str) -> pb::SummarizeRequest {
    pb::SummarizeRequest {
        text: format!("Item {id} opens here. The replicas share the work. It ends there."),
        id: id.to_string(),
        ..Default::default()
    }
}

async fn try_connect(addr: SocketAddr) -> Result<Channel, tonic::transport::Error> {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
}

async fn connect(addr: SocketAddr) -> Channel {
    bounded(&format!("a connection to {addr}"), 30, async {
        loop {
            if let Ok(channel) = try_connect(addr).await {
                return channel;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

async fn health(
    channel: Channel,
) -> Result<tonic_health::pb::health_check_response::ServingStatus, tonic::Status> {
    let status = tokio::time::timeout(
        Duration::from_secs(2),
        tonic_health::pb::health_client::HealthClient::new(channel).check(
            tonic_health::pb::HealthCheckRequest {
                service: "gist.v1.Summarizer".into(),
            },
        ),
    )
    .await
    .map_err(|_| tonic::Status::deadline_exceeded("health check"))??;
    Ok(
        tonic_health::pb::health_check_response::ServingStatus::try_from(
            status.into_inner().status,
        )
        .unwrap_or_default(),
    )
}

/// Await `future`, failing the test after `secs` seconds: nothing here may hang.
async fn bounded<T>(what: &str, secs: u64, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs} s waiting for {what}"))
}

/// Poll `done` every 20 ms, for at most 60 s.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out after 60 s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn article_id(i: usize) -> String {
    format!("doc-{i:04}")
}

fn articles(n: usize) -> String {
    (0..n)
        .map(|i| {
            serde_json::json!({
                "id": article_id(i),
                "text": format!("Article {i} begins on day {i}. Three replicas share the work. It ends there."),
            })
            .to_string()
                + "\n"
        })
        .collect()
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// The ids of the output, sorted, after checking that each appears exactly once and
/// that there are `expected` of them.
fn ids_exactly_once(output: &Path, expected: usize, label: &str) -> Vec<String> {
    let text = std::fs::read_to_string(output).unwrap();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines() {
        let json: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{label}: not JSON ({e}): {line}"));
        *seen
            .entry(json["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "{label}: ids written more than once: {repeated:?}"
    );
    assert_eq!(seen.len(), expected, "{label}: ids written");
    seen.into_keys().collect()
}
