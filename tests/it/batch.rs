//! `gist batch`, the real binary end to end, against real `gist serve` processes with the
//! fake engine (whose speed the tests set): one server, three servers with one killed
//! mid-run, the batch itself killed and rerun, overload retries, and `--local`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use crate::common::ServerProcess;
use serde_json::{json, Value};

/// `n` generated articles, as JSON Lines with ids `doc-0000`…
fn articles(n: usize) -> String {
    (0..n)
        .map(|i| {
            let text = format!(
                "Report {i} from Islamabad. Imran Khan spoke with Li Keqiang about trade on day {i}. \
                 Officials said the corridor would grow. Nobody expected a quick deal."
            );
            format!("{}\n", json!({"id": format!("doc-{i:04}"), "text": text}))
        })
        .collect()
}

/// Every output line, by id; panics on an id written twice.
fn results(path: &Path) -> HashMap<String, Value> {
    let mut by_id = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let value: Value = serde_json::from_str(line).unwrap();
        let id = value["id"].as_str().unwrap().to_string();
        assert!(
            by_id.insert(id.clone(), value).is_none(),
            "{id} written twice"
        );
    }
    by_id
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

fn batch_command(args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_gist"));
    command
        .arg("batch")
        .args(args)
        .env_remove("GIST_ENDPOINT")
        .env_remove("GIST_MODELS")
        .env_remove("GIST_ENGINE")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

async fn batch(args: &[&str]) -> (i32, String) {
    let out = batch_command(args).output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Wait until `path` has at least `n` lines, woken by inotify whenever a file in its
/// folder is written (no polling, no sleep); fails after the hang guard.
async fn wait_for_lines(path: &Path, n: usize) {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut inotify = inotify::Inotify::init().unwrap();
        inotify
            .watches()
            .add(
                path.parent().unwrap(),
                inotify::WatchMask::MODIFY | inotify::WatchMask::CREATE,
            )
            .unwrap();
        let guard = Instant::now() + crate::common::HANG_GUARD;
        let mut buffer = [0u8; 4096];
        while lines(&path) < n {
            // Wait for the next write in the folder, at most until the guard.
            let left = guard.saturating_duration_since(Instant::now());
            let mut ready = libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&inotify),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            let woke = unsafe { libc::poll(&mut ready, 1, left.as_millis() as i32) };
            assert!(woke > 0, "the output never reached {n} lines");
            let _ = inotify.read_events(&mut buffer);
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_server_every_id_once_and_bad_lines_reported_with_their_numbers() {
    let server = ServerProcess::start(&["--engine", "fake"]).await;
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
    let mut text = articles(300);
    text.push_str("{\"id\": \"broken\", \"text\": \n"); // line 301: malformed
    text.push_str("{\"id\": \"doc-0007\", \"text\": \"Again.\"}\n"); // line 302: duplicate
    text.push_str("{\"id\": \"empty\", \"text\": \"  \"}\n"); // line 303: refused by the server
    std::fs::write(&input, text).unwrap();
    let (code, stderr) = batch(&[
        "--task",
        "entities",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--endpoint",
        &server.url,
    ])
    .await;
    assert_eq!(
        code, 1,
        "failed items make the exit code non-zero:\n{stderr}"
    );
    assert!(
        stderr.contains("gist batch: 300 done, 0 skipped (already in the output), 3 failed"),
        "{stderr}"
    );
    let by_id = results(&output);
    assert_eq!(by_id.len(), 300);
    let doc = &by_id["doc-0042"];
    assert_eq!(doc["model"], "fake-ner");
    let source = "Report 42 from Islamabad. Imran Khan spoke with Li Keqiang about trade on day 42. Officials said the corridor would grow. Nobody expected a quick deal.";
    let entities = doc["entities"].as_array().unwrap();
    assert!(!entities.is_empty());
    for e in entities {
        let (start, end) = (
            e["start"].as_u64().unwrap() as usize,
            e["end"].as_u64().unwrap() as usize,
        );
        let slice: String = source.chars().skip(start).take(end - start).collect();
        assert_eq!(slice, e["text"].as_str().unwrap(), "offsets of {e}");
    }
    let errors: Vec<Value> = std::fs::read_to_string(format!("{}.errors.jsonl", output.display()))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_line: HashMap<u64, &Value> = errors
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e))
        .collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert_eq!(by_line[&301]["code"], "MALFORMED_LINE");
    assert_eq!(by_line[&302]["code"], "DUPLICATE_ID");
    assert_eq!(by_line[&302]["id"], "doc-0007");
    assert!(by_line[&302]["message"]
        .as_str()
        .unwrap()
        .contains("line 8"));
    assert_eq!(by_line[&303]["code"], "INVALID_ARGUMENT");
    assert_eq!(by_line[&303]["message"], "text: must not be empty");
    assert_eq!(by_line[&303]["attempts"], 1, "invalid input is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_servers_one_killed_mid_run_every_id_exactly_once() {
    let slow = [
        "--engine",
        "fake",
        "--fake-delay-ms",
        "15",
        "--max-batch",
        "1",
    ];
    let a = ServerProcess::start(&slow).await;
    let mut b = ServerProcess::start(&slow).await;
    let c = ServerProcess::start(&slow).await;
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
    std::fs::write(&input, articles(400)).unwrap();
    let endpoints = format!("{},{},{}", a.url, b.url, c.url);
    let child = batch_command(&[
        "--task",
        "summarize",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--endpoint",
        &endpoints,
        "--in-flight",
        "8",
    ])
    .spawn()
    .unwrap();
    wait_for_lines(&output, 60).await;
    b.kill().await;
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("gist batch: 400 done, 0 skipped (already in the output), 0 failed"),
        "{stderr}"
    );
    let by_id = results(&output);
    assert_eq!(by_id.len(), 400);
    for i in 0..400 {
        let doc = &by_id[&format!("doc-{i:04}")];
        assert!(
            doc["summary"]
                .as_str()
                .unwrap()
                .contains(&format!("day {i}")),
            "{doc}"
        );
    }
    let errors = std::fs::read_to_string(format!("{}.errors.jsonl", output.display())).unwrap();
    assert_eq!(errors, "", "nothing in the errors file");
    assert!(
        stderr.contains(b.url.as_str()),
        "the failover should be logged:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_batch_reruns_to_completion_without_duplicates() {
    let server = ServerProcess::start(&[
        "--engine",
        "fake",
        "--fake-delay-ms",
        "10",
        "--max-batch",
        "2",
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
    std::fs::write(&input, articles(300)).unwrap();
    let args = [
        "--task",
        "analyze",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--endpoint",
        &server.url,
    ];
    let mut child = batch_command(&args).spawn().unwrap();
    wait_for_lines(&output, 50).await;
    child.kill().await.unwrap();
    let written = lines(&output);
    assert!(
        written < 300,
        "the first run should be cut short ({written} written)"
    );
    // A crash can also tear the last line mid-write.
    let mut torn = std::fs::read_to_string(&output).unwrap();
    torn.push_str("{\"id\":\"doc-0299\",\"summary\":{\"sum");
    std::fs::write(&output, torn).unwrap();

    let (code, stderr) = batch(&args).await;
    assert_eq!(code, 0, "{stderr}");
    let done_now = 300 - written;
    assert!(
        stderr.contains(&format!(
            "gist batch: {done_now} done, {written} skipped (already in the output), 0 failed"
        )),
        "{stderr}"
    );
    let by_id = results(&output);
    assert_eq!(by_id.len(), 300);
    let doc = &by_id["doc-0299"];
    assert!(
        doc["summary"]["summary"]
            .as_str()
            .unwrap()
            .contains("day 299"),
        "{doc}"
    );
    assert!(doc["entities"]["entities"].as_array().is_some());
    // A third run has nothing left to do.
    let (code, stderr) = batch(&args).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("gist batch: 0 done, 300 skipped"),
        "{stderr}"
    );
    assert_eq!(results(&output).len(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overloaded_servers_are_retried_after_their_pushback() {
    // A queue of 2 against 16 items in flight: most first attempts are refused with
    // RESOURCE_EXHAUSTED and a 250 ms hint, and retried until they fit.
    let server = ServerProcess::start(&[
        "--engine",
        "fake",
        "--fake-delay-ms",
        "5",
        "--queue-capacity",
        "2",
        "--max-batch",
        "1",
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
    std::fs::write(&input, articles(40)).unwrap();
    let (code, stderr) = batch(&[
        "--task",
        "entities",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--endpoint",
        &server.url,
        "--in-flight",
        "16",
        "--max-attempts",
        "50",
        "--retry-max-ms",
        "400",
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("40 done"), "{stderr}");
    let retries: usize = stderr
        .split(" retries")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a retry count in the summary line");
    assert!(retries > 0, "{stderr}");
    assert_eq!(results(&output).len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_mode_runs_in_process_from_stdin_to_stdout() {
    let mut child = batch_command(&[
        "--task",
        "summarize",
        "--local",
        "--engine",
        "fake",
        "--input",
        "-",
        "--output",
        "-",
        "--id-field",
        "doc",
        "--text-field",
        "article",
        "--mode",
        "extractive",
        "--max-key-points",
        "2",
        "--errors",
        std::env::temp_dir()
            .join("gist-local-test.errors.jsonl")
            .to_str()
            .unwrap(),
    ])
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input: String = (0..20)
        .map(|i| format!("{}\n", json!({"doc": i, "article": format!("First sentence {i} is here. Second one follows it. A third closes article {i}.")})))
        .collect();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, input.as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let docs: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 20);
    let mut ids: Vec<u64> = docs
        .iter()
        .map(|d| d["id"].as_u64().expect("numeric ids stay numbers"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..20).collect::<Vec<_>>());
    for d in &docs {
        assert_eq!(d["mode"], "SUMMARY_MODE_EXTRACTIVE");
        assert_eq!(d["key_points"].as_array().unwrap().len(), 2);
    }
    assert!(stderr.contains("gist batch: 20 done"), "{stderr}");
}

/// The README's `--local` command, with the real default models, on examples/articles.jsonl.
#[cfg(feature = "onnx")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readme_local_command_finds_the_entities_of_the_example_articles() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("entities.jsonl");
    let input = crate::common::repo().join("examples/articles.jsonl");
    let models = crate::common::default_models();
    let (code, stderr) = batch(&[
        "--task",
        "entities",
        "--local",
        "--models",
        models.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    let by_id = results(&output);
    assert_eq!(by_id.len(), 3);
    let has = |id: &str, label: &str, text: &str| {
        by_id[id]["entities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["label"] == label && e["text"] == text)
    };
    assert!(
        has("khan-li-call", "PER", "Imran Khan"),
        "{}",
        by_id["khan-li-call"]
    );
    assert!(has("khan-li-call", "PER", "Li Keqiang"));
    assert!(
        has("merkel-paris", "PER", "Angela Merkel"),
        "{}",
        by_id["merkel-paris"]
    );
    assert!(has("merkel-paris", "LOC", "Paris"));
    assert!(
        has("apple-results", "ORG", "Apple"),
        "{}",
        by_id["apple-results"]
    );
    assert_eq!(by_id["khan-li-call"]["model"], "conll03-minilm-ner");
}
