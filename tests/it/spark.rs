//! The PySpark job (clients/spark/gist_spark.py), submitted as the README shows
//! (spark-submit, the client as --py-files), on `local[2,2]` (two threads, two attempts
//! per task) against two real `gist serve` processes: 200 JSON Lines articles in
//! 4 partitions, the endpoint a `dns:///` name with both replicas' addresses, and the
//! first attempt of one partition failing halfway (--fail-first-attempt). Spark runs that
//! task again; the Parquet output holds every id exactly once, every item OK, and both
//! replicas answered calls.
//!
//! The replicas listen on 127.0.0.1:P and 127.0.0.2:P; the name resolves to both through
//! an /etc/hosts bind-mounted in a mount namespace of the job's own (so root is needed).
//! The fake engine stands in for the models. Needs the deploy venv
//! (scripts/deploy-venv.sh) and Java 17+.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use crate::common;
use crate::kubernetes::deploy_python;
use crate::netns::require_root;

const NAME: &str = "gist-spark-replicas";
const ANALYZE_OK: &str = r#"gist_requests_total{code="OK",rpc="Analyze"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spark_job_writes_every_id_once_over_two_replicas_despite_a_failed_task() {
    require_root("a_spark_job_writes_every_id_once_over_two_replicas_despite_a_failed_task");
    let python = deploy_python();
    let dir = tempfile::tempdir().unwrap();
    let a = Replica::start("127.0.0.1:0").await;
    let port = a.grpc.port();
    let b = Replica::start(&format!("127.0.0.2:{port}")).await;

    let input = dir.path().join("articles.jsonl");
    let articles: String = (0..200)
        .map(|i| {
            serde_json::json!({
                "doc": i,
                "body": format!("Article {i} begins on day {i}. Spark sends it to gist. It ends there."),
            })
            .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(&input, articles).unwrap();
    let hosts = dir.path().join("hosts");
    let system = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    std::fs::write(
        &hosts,
        format!("{system}\n127.0.0.1 {NAME}\n127.0.0.2 {NAME}\n"),
    )
    .unwrap();
    let output = dir.path().join("results.parquet");
    let log = dir.path().join("spark.log");

    // The README's way: spark-submit with the client shipped as --py-files.
    let zip = dir.path().join("gist_client.zip");
    let zipped = std::process::Command::new(&python)
        .args(["-m", "zipfile", "-c"])
        .arg(&zip)
        .arg(common::repo().join("clients/python/gist_client"))
        .output()
        .unwrap();
    assert!(
        zipped.status.success(),
        "{}",
        String::from_utf8_lossy(&zipped.stderr)
    );
    let spark_submit = python.with_file_name("spark-submit");
    let log_file = std::fs::File::create(&log).unwrap();
    let mut job = tokio::process::Command::new("unshare");
    job.args(["--mount", "--", "sh", "-c"])
        .arg(r#"mount --bind "$1" /etc/hosts && shift && exec "$@""#)
        .arg("job")
        .arg(&hosts)
        .arg(&spark_submit)
        .args(["--master", "local[2,2]", "--py-files"])
        .arg(&zip)
        .arg(common::repo().join("clients/spark/gist_spark.py"))
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .args(["--endpoint", &format!("dns:///{NAME}:{port}")])
        .args([
            "--task",
            "analyze",
            "--id-field",
            "doc",
            "--text-field",
            "body",
        ])
        .args(["--partitions", "4", "--in-flight", "4"])
        .args(["--fail-first-attempt", "1", "--fail-on-errors"])
        .env("PYSPARK_PYTHON", &python)
        .env("PYSPARK_DRIVER_PYTHON", &python)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PYTHONPATH")
        // spark-submit passes the Python driver's stderr to its stdout: keep both.
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .kill_on_drop(true);
    for var in [
        "http_proxy",
        "https_proxy",
        "grpc_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
    ] {
        job.env_remove(var);
    }
    let status = tokio::time::timeout(Duration::from_secs(300), job.status())
        .await
        .expect("the Spark job did not finish in 300 s")
        .unwrap();
    let spark_log = std::fs::read_to_string(&log).unwrap_or_default();
    let tail: String = spark_log
        .lines()
        .rev()
        .take(60)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(status.success(), "the Spark job failed ({status}):\n{tail}");
    assert!(
        spark_log.contains("gist_spark: 200 ids written"),
        "{tail}\n(the whole log: {})",
        keep(&log)
    );
    // Spark did run a task twice: the first attempt of partition 1 failed.
    assert!(
        spark_log.contains("injected failure (--fail-first-attempt 1)"),
        "no failed task in the log:\n{tail}\n(the whole log: {})",
        keep(&log)
    );

    // The output, read back with pyarrow.
    let summary = std::process::Command::new(&python)
        .arg("-c")
        .arg(READ_BACK)
        .arg(&output)
        .output()
        .unwrap();
    let (stdout, stderr) = common::outputs(&summary);
    assert!(summary.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let ids: Vec<String> = (0..200).map(|i| i.to_string()).collect();
    assert_eq!(summary["rows"], 200, "{summary}");
    assert_eq!(
        summary["ids"],
        serde_json::json!(ids),
        "every id exactly once: {summary}"
    );
    assert_eq!(summary["ok"], 200, "{summary}");
    for (id, result) in summary["results"].as_object().unwrap() {
        let result: serde_json::Value = serde_json::from_str(result.as_str().unwrap()).unwrap();
        assert_eq!(result["id"], id.as_str(), "{result}");
        assert!(result["summary"].is_object(), "{result}");
    }

    // Both replicas took calls; together more than 200 (the failed attempt's calls were
    // made, then made again).
    let (on_a, on_b) = (a.analyze_ok().await, b.analyze_ok().await);
    assert!(
        on_a > 0.0 && on_b > 0.0,
        "calls per replica: {on_a} and {on_b}"
    );
    assert!(on_a + on_b > 200.0, "calls: {on_a} + {on_b}");
}

/// Copy a log out of the test's temporary folder, for a failure message.
fn keep(log: &std::path::Path) -> String {
    let kept = std::env::temp_dir().join(format!("gist-spark-{}.log", std::process::id()));
    let _ = std::fs::copy(log, &kept);
    kept.display().to_string()
}

/// Reads the job's Parquet output: row count, sorted ids, OK count and a few results.
const READ_BACK: &str = r#"
import json, sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1]).to_pylist()
ids = sorted((r["id"] for r in t), key=int)
print(json.dumps({
    "rows": len(t),
    "ids": ids,
    "ok": sum(1 for r in t if r["ok"]),
    "results": {r["id"]: r["result"] for r in t if r["id"] in ("0", "1", "199")},
}))
"#;

/// A `gist serve` (the fake engine) on an address of our choosing, with metrics.
pub struct Replica {
    /// Where it serves gRPC.
    pub grpc: SocketAddr,
    /// Where it serves GET /metrics.
    pub metrics: SocketAddr,
    _child: tokio::process::Child,
}

impl Replica {
    /// Start it on `listen` (port 0: any) and wait until it is SERVING.
    pub async fn start(listen: &str) -> Replica {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let host = listen.rsplit_once(':').unwrap().0;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gist"))
            .args(["serve", "--engine", "fake", "--fake-delay-ms", "5"])
            .args(["--listen", listen, "--metrics-listen", &format!("{host}:0")])
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            .env_remove("GIST_MODELS")
            .env_remove("GIST_ENGINE")
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (mut grpc, mut metrics) = (None, None);
        tokio::time::timeout(Duration::from_secs(30), async {
            while grpc.is_none() || metrics.is_none() {
                let line = lines
                    .next_line()
                    .await
                    .unwrap()
                    .expect("gist serve exited before listening");
                let json: serde_json::Value = serde_json::from_str(&line).unwrap();
                let fields = &json["fields"];
                let message = fields["message"].as_str().unwrap_or("");
                let address = || fields["address"].as_str().unwrap().parse().unwrap();
                if message.starts_with("listening") {
                    grpc = Some(address());
                } else if message.starts_with("metrics at") {
                    metrics = Some(address());
                }
            }
        })
        .await
        .expect("gist serve did not listen within 30 s");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let replica = Replica {
            grpc: grpc.unwrap(),
            metrics: metrics.unwrap(),
            _child: child,
        };
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", replica.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(30), async {
            while common::summarizer_health(channel.clone()).await
                != tonic_health::pb::health_check_response::ServingStatus::Serving
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("not SERVING within 30 s");
        replica
    }

    async fn analyze_ok(&self) -> f64 {
        common::metric(
            &common::http_get(self.metrics, "/metrics").await,
            ANALYZE_OK,
        )
    }
}
