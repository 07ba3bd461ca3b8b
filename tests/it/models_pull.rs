//! `gist models pull` through the real binary against a small HTTP/1.1 server laid out
//! like the Hugging Face Hub (the repository API and `resolve` URLs with the headers
//! hf-hub reads), reached through HF_ENDPOINT with the cache in a temporary HF_HOME.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::common::{gist, outputs};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// One repository: its files, and the token it requires (a private repository).
struct Repo {
    files: BTreeMap<String, Vec<u8>>,
    token: Option<&'static str>,
}

/// A Hub on 127.0.0.1:0, serving until the test process ends; `requests` records every
/// request line.
struct Hub {
    endpoint: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Hub {
    fn start(repos: BTreeMap<String, Repo>) -> Hub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let repos = Arc::new(repos);
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let (repos, log) = (repos.clone(), log.clone());
                std::thread::spawn(move || {
                    if let Ok(stream) = stream {
                        let _ = serve(stream, &repos, &log);
                    }
                });
            }
        });
        Hub { endpoint, requests }
    }

    fn requested(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Answer one request, then close the connection.
fn serve(
    mut stream: TcpStream,
    repos: &BTreeMap<String, Repo>,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let path = line.split(' ').nth(1).unwrap_or_default().to_string();
    log.lock().unwrap().push(path.clone());
    let (status, extra, body) = route(&path, &headers, repos);
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&body)?;
    stream.flush()
}

type Answer = (&'static str, Vec<(&'static str, String)>, Vec<u8>);

fn route(path: &str, headers: &BTreeMap<String, String>, repos: &BTreeMap<String, Repo>) -> Answer {
    let not_found = || {
        (
            "404 Not Found",
            vec![],
            b"{\"error\": \"not found\"}".to_vec(),
        )
    };
    // /api/models/{owner}/{name}/revision/{rev}
    if let Some(rest) = path.strip_prefix("/api/models/") {
        let Some((id, rev)) = rest.split_once("/revision/") else {
            return not_found();
        };
        let Some(repo) = repos.get(id) else {
            return not_found();
        };
        if let Some(denied) = check_token(repo, headers) {
            return denied;
        }
        if rev != "main" && rev != SHA {
            return not_found();
        }
        let siblings: Vec<serde_json::Value> = repo
            .files
            .keys()
            .map(|f| serde_json::json!({"rfilename": f}))
            .collect();
        let body = serde_json::json!({"id": id, "sha": SHA, "siblings": siblings});
        return (
            "200 OK",
            vec![("Content-Type", "application/json".into())],
            body.to_string().into_bytes(),
        );
    }
    // /{owner}/{name}/resolve/{rev}/{file}
    let Some((id, rest)) = path.trim_start_matches('/').split_once("/resolve/") else {
        return not_found();
    };
    let Some(repo) = repos.get(id) else {
        return not_found();
    };
    if let Some(denied) = check_token(repo, headers) {
        return denied;
    }
    let Some((rev, file)) = rest.split_once('/') else {
        return not_found();
    };
    let Some(content) = repo.files.get(file).filter(|_| rev == "main" || rev == SHA) else {
        return not_found();
    };
    let size = content.len();
    let etag = format!("\"{:016x}{size}\"", fnv(content));
    let mut extra = vec![("ETag", etag), ("X-Repo-Commit", SHA.to_string())];
    match headers.get("range").and_then(|r| r.strip_prefix("bytes=")) {
        Some(range) => {
            let (start, end) = range.split_once('-').unwrap();
            let start: usize = start.parse().unwrap();
            let end: usize = if end.is_empty() {
                size - 1
            } else {
                end.parse().unwrap()
            };
            extra.push(("Content-Range", format!("bytes {start}-{end}/{size}")));
            ("206 Partial Content", extra, content[start..=end].to_vec())
        }
        None => ("200 OK", extra, content.clone()),
    }
}

fn check_token(repo: &Repo, headers: &BTreeMap<String, String>) -> Option<Answer> {
    let wanted = format!("Bearer {}", repo.token?);
    (headers.get("authorization") != Some(&wanted)).then(|| {
        (
            "401 Unauthorized",
            vec![],
            b"{\"error\": \"Invalid credentials\"}".to_vec(),
        )
    })
}

/// A content hash for the ETag (FNV-1a).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100000001b3)
    })
}

/// A repository holding a tiny token classifier (always B-LOC), plus files gist must not
/// download.
fn ner_repo(token: Option<&'static str>) -> Repo {
    let dir = tempfile::tempdir().unwrap();
    crate::common::tiny_ner(dir.path(), Some("B-LOC"));
    let mut files = BTreeMap::new();
    for f in [
        "config.json",
        "model.safetensors",
        "vocab.txt",
        "tokenizer_config.json",
    ] {
        files.insert(f.to_string(), std::fs::read(dir.path().join(f)).unwrap());
    }
    for f in [
        "tf_model.h5",
        "flax_model.msgpack",
        "onnx/model.onnx",
        "pytorch_model.bin",
    ] {
        files.insert(f.to_string(), b"not for gist".to_vec());
    }
    files.insert(
        "README.md".into(),
        b"---\nlicense: mit\n---\n# tiny\n".to_vec(),
    );
    Repo { files, token }
}

fn pull(
    hub_endpoint: &str,
    hf_home: &Path,
    models: &Path,
    args: &[&str],
    token: Option<&str>,
) -> std::process::Output {
    let mut all = vec!["models", "pull"];
    all.extend_from_slice(args);
    all.extend(["--task", "ner", "--models", models.to_str().unwrap()]);
    let mut env = vec![
        ("HF_ENDPOINT", hub_endpoint),
        ("HF_HOME", hf_home.to_str().unwrap()),
    ];
    if let Some(t) = token {
        env.push(("HF_TOKEN", t));
    }
    gist(&all, &env, "")
}

fn hub() -> Hub {
    let mut repos = BTreeMap::new();
    repos.insert("acme/tiny-ner".to_string(), ner_repo(None));
    repos.insert("acme/private-ner".to_string(), ner_repo(Some("hf_secret")));
    Hub::start(repos)
}

fn entities(models: &Path) -> Vec<String> {
    let out = gist(
        &["entities", "--models", models.to_str().unwrap()],
        &[],
        "Khan met Li.",
    );
    let (stdout, stderr) = outputs(&out);
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    json["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["text"].as_str().unwrap(),
                e["label"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn pull_fetches_only_what_gist_reads_and_names_the_model() {
    let hub = hub();
    let (hf_home, models) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let out = pull(
        &hub.endpoint,
        hf_home.path(),
        models.path(),
        &["acme/tiny-ner"],
        None,
    );
    let (stdout, stderr) = outputs(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("added [ner] tiny-ner"), "{stdout}");
    let manifest = std::fs::read_to_string(models.path().join("models.toml")).unwrap();
    assert_eq!(
        manifest,
        "[ner]\nname = \"tiny-ner\"\npath = \"tiny-ner\"\nlower_case = true\n"
    );
    assert_eq!(entities(models.path()), ["Khan LOC", "Li LOC", ". LOC"]);

    let downloaded: Vec<String> = hub
        .requested()
        .iter()
        .filter_map(|p| {
            p.strip_prefix("/acme/tiny-ner/resolve/main/")
                .map(String::from)
        })
        .collect();
    let mut files = downloaded.clone();
    files.sort();
    files.dedup();
    assert_eq!(
        files,
        [
            "README.md",
            "config.json",
            "model.safetensors",
            "tokenizer_config.json",
            "vocab.txt"
        ]
    );
    // The files are in the Hub cache layout huggingface_hub uses.
    let snapshot = hf_home
        .path()
        .join(format!("hub/models--acme--tiny-ner/snapshots/{SHA}"));
    assert!(snapshot.join("model.safetensors").is_file());
    assert_eq!(
        std::fs::read_to_string(hf_home.path().join("hub/models--acme--tiny-ner/refs/main"))
            .unwrap(),
        SHA
    );
}

#[test]
fn private_repositories_need_hf_token() {
    let hub = hub();
    let (hf_home, models) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let out = pull(
        &hub.endpoint,
        hf_home.path(),
        models.path(),
        &["acme/private-ner"],
        None,
    );
    let (_, stderr) = outputs(&out);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("acme/private-ner: access denied (HTTP 401)")
            && stderr.contains("set HF_TOKEN"),
        "{stderr}"
    );

    let out = pull(
        &hub.endpoint,
        hf_home.path(),
        models.path(),
        &["acme/private-ner"],
        Some("wrong"),
    );
    let (_, stderr) = outputs(&out);
    assert!(
        stderr.contains("access denied with the token in HF_TOKEN"),
        "{stderr}"
    );
    assert!(!models.path().join("models.toml").exists());

    let out = pull(
        &hub.endpoint,
        hf_home.path(),
        models.path(),
        &["acme/private-ner", "--as", "mine"],
        Some("hf_secret"),
    );
    let (stdout, stderr) = outputs(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("added [ner] mine"), "{stdout}");
    assert_eq!(entities(models.path()), ["Khan LOC", "Li LOC", ". LOC"]);
}

#[test]
fn unknown_repositories_and_revisions_are_one_line() {
    let hub = hub();
    let (hf_home, models) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for (args, want) in [
        (
            vec!["acme/nothing"],
            "acme/nothing: repository or revision \"main\" not found at",
        ),
        (
            vec!["acme/tiny-ner", "--revision", "v9"],
            "repository or revision \"v9\" not found",
        ),
    ] {
        let out = pull(&hub.endpoint, hf_home.path(), models.path(), &args, None);
        let (_, stderr) = outputs(&out);
        assert!(!out.status.success());
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(want), "{stderr}");
    }
}

#[test]
fn an_unreachable_hub_is_one_line_and_a_failure() {
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let (hf_home, models) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let out = pull(
        &endpoint,
        hf_home.path(),
        models.path(),
        &["acme/tiny-ner"],
        None,
    );
    let (stdout, stderr) = outputs(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: cannot reach {endpoint} for acme/tiny-ner: "
        )),
        "{stderr}"
    );
}
