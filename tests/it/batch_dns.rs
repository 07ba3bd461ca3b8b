//! `gist batch --endpoint dns:///NAME:PORT` without root: `localhost` resolves (from
//! /etc/hosts) to the loopback address a real `gist serve` listens on; and endpoints that
//! are not `dns:///NAME:PORT` are refused before anything runs, naming the flag. The
//! multi-host test (multihost.rs) covers a name with three replicas under faults.

use std::process::Stdio;

use crate::common;

fn gist_batch(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gist"))
        .arg("batch")
        .args(args)
        .env_remove("GIST_ENDPOINT")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gist_batch_over_dns_resolves_the_name_and_writes_every_id() {
    let server = common::ServerProcess::start(&["--engine", "fake"]).await;
    let port = server.url.rsplit_once(':').unwrap().1.to_string();
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
    let articles: String = (0..50)
        .map(|i| {
            serde_json::json!({"id": format!("a{i}"), "text": format!("Article {i} is short. It ends.")})
                .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(&input, articles).unwrap();
    let endpoint = format!("dns:///localhost:{port}");
    let args = [
        "--task",
        "summarize",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--endpoint",
        &endpoint,
        // Where /etc/hosts also maps localhost to ::1, where nothing listens: that lane
        // fails fast and the other takes the work.
        "--give-up-secs",
        "5",
    ];
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        gist_batch(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    let (_, stderr) = common::outputs(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("gist batch: 50 done"), "{stderr}");
    let text = std::fs::read_to_string(&output).unwrap();
    let mut ids: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    let mut expected: Vec<String> = (0..50).map(|i| format!("a{i}")).collect();
    expected.sort();
    assert_eq!(ids, expected);
}

#[test]
fn endpoints_that_are_not_dns_name_port_are_refused_naming_the_flag() {
    for (endpoint, says) in [
        ("dns:///localhost", "expected dns:///NAME:PORT"),
        ("dns:///localhost:0", "expected dns:///NAME:PORT"),
        (
            "dns://10.0.0.53/gist:50051",
            "a DNS server in the address is not supported",
        ),
    ] {
        let out = gist_batch(&[
            "--task",
            "entities",
            "--input",
            "-",
            "--output",
            "-",
            "--endpoint",
            endpoint,
        ]);
        let (_, stderr) = common::outputs(&out);
        assert_eq!(out.status.code(), Some(2), "{endpoint}: {stderr}");
        assert!(
            stderr.contains(&format!("--endpoint {endpoint}")) && stderr.contains(says),
            "{endpoint}: {stderr}"
        );
    }
}
