//! The Python client's `GistPool` over `dns:///`, against two real `gist serve` processes
//! (fake engine) on 127.0.0.1:P and 127.0.0.2:P: the name starts with one address; a
//! third of the way through, a second address is added to it (scaling up), and two
//! thirds of the way, the first is removed (scaling down). The pool re-resolves the name
//! (every 0.2 s here; the test pauses 0.3 s after each change), so the new replica gets
//! calls and the removed one none after the change; every item ends OK, once. The name comes from an /etc/hosts bind-mounted in
//! the job's own mount namespace, rewritten in place while it runs (so root is needed).

use std::process::Stdio;
use std::time::Duration;

use crate::common;
use crate::kubernetes::deploy_python;
use crate::netns::require_root;
use crate::spark::Replica;

const NAME: &str = "gist-pool-replicas";
const SUMMARIZE_OK: &str = r#"gist_requests_total{code="OK",rpc="Summarize"}"#;

/// Runs in the mount namespace: argv = hosts file, port.
const SCRIPT: &str = r#"
import json, sys, time
from gist_client import GistPool
hosts, port = sys.argv[1], int(sys.argv[2])
base = "".join(l for l in open(hosts).read().splitlines(True) if not l.rstrip().endswith(" NAME"))
def name(*addresses):
    # In place (same inode): the bind mount over /etc/hosts shows the new text.
    with open(hosts, "w") as f:
        f.write(base + "".join(f"{a} NAME\n" for a in addresses))
seen = {}
def items():
    for i in range(300):
        if i == 100:
            name("127.0.0.1", "127.0.0.2")
            time.sleep(0.3)  # longer than resolve_every: the next item finds the change
        if i == 200:
            seen["before_removal"] = pool.replicas()
            name("127.0.0.2")
            time.sleep(0.3)
        yield (f"item-{i}", f"Item {i} starts here. It has two sentences.")
with GistPool(f"dns:///NAME:{port}", resolve_every=0.2, retry_base=0.05, max_attempts=10) as pool:
    outcomes = list(pool.summarize_many(items(), in_flight=4))
    time.sleep(0.3)
    seen["at_end"] = pool.replicas()
print(json.dumps({
    "ok": sum(1 for o in outcomes if o.ok),
    "ids": len({o.id for o in outcomes}),
    "errors": [f"{o.id}: {o.error}" for o in outcomes if not o.ok][:5],
    **seen,
}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_pool_follows_a_name_as_replicas_are_added_and_removed() {
    require_root("the_python_pool_follows_a_name_as_replicas_are_added_and_removed");
    let python = deploy_python();
    let a = Replica::start("127.0.0.1:0").await;
    let port = a.grpc.port();
    let b = Replica::start(&format!("127.0.0.2:{port}")).await;
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    let system = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    std::fs::write(&hosts, format!("{system}\n127.0.0.1 {NAME}\n")).unwrap();

    let mut job = tokio::process::Command::new("unshare");
    job.args(["--mount", "--", "sh", "-c"])
        .arg(r#"mount --bind "$1" /etc/hosts && shift && exec "$@""#)
        .arg("pool")
        .arg(&hosts)
        .arg(&python)
        .arg("-c")
        .arg(SCRIPT.replace("NAME", NAME))
        .arg(&hosts)
        .arg(port.to_string())
        .env("PYTHONPATH", common::repo().join("clients/python"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
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
    let out = tokio::time::timeout(Duration::from_secs(120), job.output())
        .await
        .expect("the pool did not finish in 120 s")
        .unwrap();
    let (stdout, stderr) = common::outputs(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["ok"], 300, "{report}");
    assert_eq!(report["ids"], 300, "{report}");
    let (first, second) = (format!("127.0.0.1:{port}"), format!("127.0.0.2:{port}"));
    // After the name grew: both replicas in use, and the new one had calls.
    let before = report["before_removal"].as_object().unwrap();
    assert!(
        before.contains_key(&first) && before.contains_key(&second),
        "{report}"
    );
    assert!(before[&second].as_u64().unwrap() > 0, "{report}");
    // After the name shrank: only the second.
    let at_end = report["at_end"].as_object().unwrap();
    assert_eq!(at_end.keys().collect::<Vec<_>>(), [&second], "{report}");
    // The servers agree: together exactly the 300 calls, and the first none after it left
    // the name (the pool had sent it all it would ever answer by then).
    let on_a = common::metric(&common::http_get(a.metrics, "/metrics").await, SUMMARIZE_OK);
    let on_b = common::metric(&common::http_get(b.metrics, "/metrics").await, SUMMARIZE_OK);
    assert_eq!(on_a + on_b, 300.0, "{on_a} + {on_b}");
    assert_eq!(on_a, before[&first].as_f64().unwrap(), "{report}");
}
