//! The Python client (clients/python, its venv and stubs prepared by `make setup`) against a
//! server running the default models, driven exactly as its README shows:
//! `clients/python/.venv/bin/python clients/python/example.py --target ADDR`.

use std::path::PathBuf;
use std::process::Command;

/// The venv interpreter that `make setup` (scripts/setup.sh) prepares, with the generated
/// stubs beside the client. Missing means set-up was not run: a failure, never a skip.
fn client_python() -> PathBuf {
    let client = crate::common::repo().join("clients/python");
    let python = client.join(".venv/bin/python");
    assert!(
        python.is_file(),
        "the Python client's venv is missing at {}: run `make setup` (scripts/setup.sh)",
        python.display()
    );
    let stubs = client.join("gist_client/_proto/gist_pb2_grpc.py");
    assert!(
        stubs.is_file(),
        "the Python client's generated stubs are missing at {}: run `make setup` (scripts/setup.sh)",
        stubs.display()
    );
    python
}

/// The article's paragraphs as example.py splits them: blocks of non-blank lines.
fn paragraph_count(text: &str) -> usize {
    let mut count = 0;
    let mut in_paragraph = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            in_paragraph = false;
        } else if !in_paragraph {
            count += 1;
            in_paragraph = true;
        }
    }
    count
}

/// The lines of stdout between the line `header` and the next section header (a line
/// ending with ':' that is not a key point or an entity).
fn section<'a>(stdout: &'a str, header: &str) -> Vec<&'a str> {
    let mut lines = stdout.lines().skip_while(|l| *l != header);
    assert_eq!(
        lines.next(),
        Some(header),
        "no {header:?} section in:\n{stdout}"
    );
    lines
        .take_while(|l| !matches!(*l, "Key points:" | "Entities:" | "Stream:"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_example_summarizes_the_khan_li_article_and_streams_its_paragraphs() {
    let python = client_python();
    let server = crate::common::TestServer::with_default_models().await;
    let addr = server.addr.to_string();

    // The README's command; the article is the example's default FILE.
    let out = tokio::task::spawn_blocking(move || {
        let mut command = Command::new(python);
        // A proxy from the environment must not sit between the client and 127.0.0.1.
        for var in [
            "http_proxy",
            "https_proxy",
            "grpc_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
        ] {
            command.env_remove(var);
        }
        command
            .arg(crate::common::repo().join("clients/python/example.py"))
            .args(["--target", &addr])
            .env("PYTHONIOENCODING", "utf-8")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("PYTHONPATH")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = crate::common::outputs(&out);
    assert!(
        out.status.success(),
        "example.py failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );

    let text = crate::common::khan_li();
    let chars: Vec<char> = text.chars().collect();

    // Key points: the default 5, each a sentence of the article (extractive mode).
    let key_points = section(&stdout, "Key points:");
    assert_eq!(key_points.len(), 5, "{stdout}");
    for line in &key_points {
        let point = line
            .strip_prefix("- ")
            .unwrap_or_else(|| panic!("not a key point line: {line:?}"));
        assert!(
            !point.is_empty() && text.contains(point),
            "key point is not a sentence of the article: {point:?}"
        );
    }

    // Entities: LABEL<TAB>TEXT<TAB>START-END, offsets in code points that slice the article.
    let mut entities = Vec::new();
    for line in section(&stdout, "Entities:") {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 3, "not an entity line: {line:?}");
        let (start, end) = fields[2]
            .split_once('-')
            .unwrap_or_else(|| panic!("no START-END in {line:?}"));
        let (start, end): (usize, usize) = (start.parse().unwrap(), end.parse().unwrap());
        assert!(start < end && end <= chars.len(), "{line:?}");
        assert_eq!(
            chars[start..end].iter().collect::<String>(),
            fields[1],
            "{line:?}"
        );
        entities.push((fields[0].to_string(), fields[1].to_string()));
    }
    for (label, name) in [
        ("PER", "Imran Khan"),
        ("PER", "Li Keqiang"),
        ("LOC", "Pakistan"),
    ] {
        assert!(
            entities.iter().any(|(l, t)| l == label && t == name),
            "{label}\t{name} missing from the entities:\n{stdout}"
        );
    }

    // Stream: one answer per paragraph, p1..pN in order, each a result.
    let stream = section(&stdout, "Stream:");
    let paragraphs = paragraph_count(&text);
    assert!(paragraphs > 1);
    assert_eq!(stream.len(), paragraphs, "{stdout}");
    let mut total = 0;
    for (i, line) in stream.iter().enumerate() {
        let count = line
            .strip_prefix(&format!("p{}: ", i + 1))
            .and_then(|rest| rest.strip_suffix(" entities"))
            .unwrap_or_else(|| panic!("line {} of the stream is {line:?}", i + 1));
        total += count
            .parse::<usize>()
            .unwrap_or_else(|_| panic!("not a count: {line:?}"));
    }
    assert!(total > 0, "{stdout}");
}
