//! Several models per task, chosen per request, listed by `gist.v1.Models/ListModels`, and
//! reloaded without dropping a call: tiny rust-bert NER models the tests build (one with
//! another label set), served from a models folder as `gist serve --models` serves it.

use std::path::Path;
use std::time::Instant;

use crate::common::{metric, until_async, ServerProcess, TestServer};
use crate::common::{ner_with, tiny_encoder, NER_LABELS};
use gist::engine::{Backend, EngineArgs};
use gist::metrics::Metrics;
use gist::pb;
use gist::pb::entity_extractor_client::EntityExtractorClient;
use gist::pb::models_client::ModelsClient;
use gist::server::Limits;
use gist::tasks::Task;
use gist::worker::{ModelState, Worker, WorkerArgs};
use tonic::Code;

const TEXT: &str = "Imran Khan met Li Keqiang in Beijing on Monday.";
const DRUG_LABELS: [&str; 3] = ["O", "B-DRUG", "I-DRUG"];

/// A model folder with an encoder and the NER models of `manifest` (its text).
fn folder(dir: &Path, manifest: &str) {
    tiny_encoder(&dir.join("enc"));
    std::fs::write(dir.join("models.toml"), manifest).unwrap();
}

const TWO: &str = r#"
[encoder]
name = "enc"
path = "enc"

[[ner]]
name = "people"
path = "people"
default = true

[[ner]]
name = "drugs"
path = "drugs"
"#;

fn engine_args(dir: &Path) -> EngineArgs {
    EngineArgs {
        models: dir.to_path_buf(),
        backend: Backend::Auto,
        threads: 1,
        ..EngineArgs::default()
    }
}

async fn serve(dir: &Path, args: WorkerArgs) -> (TestServer, Worker) {
    let engine = engine_args(dir);
    let worker = Worker::spawn(
        move || gist::engine::load(&engine),
        args,
        Metrics::new(&Task::names()),
    );
    worker.ready().await.unwrap();
    (
        TestServer::start(worker.clone(), Limits::default()).await,
        worker,
    )
}

fn request(model: &str) -> pb::ExtractEntitiesRequest {
    pb::ExtractEntitiesRequest {
        text: TEXT.into(),
        model: model.into(),
        ..Default::default()
    }
}

fn labels(response: &pb::ExtractEntitiesResponse) -> Vec<String> {
    let mut labels: Vec<String> = response.entities.iter().map(|e| e.label.clone()).collect();
    labels.dedup();
    labels
}

async fn list(channel: &tonic::transport::Channel) -> Vec<pb::ModelStatus> {
    ModelsClient::new(channel.clone())
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .models
}

fn find<'a>(
    models: &'a [pb::ModelStatus],
    name: &str,
    state: pb::ModelState,
) -> &'a pb::ModelStatus {
    models
        .iter()
        .find(|m| m.name == name && m.state == state as i32)
        .unwrap_or_else(|| panic!("no {state:?} model {name} in {models:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_pick_either_model_batches_never_mix_them_and_list_models_says_what_is_served() {
    let dir = tempfile::tempdir().unwrap();
    ner_with(
        &dir.path().join("people"),
        &NER_LABELS,
        Some("B-PER"),
        32,
        2,
    );
    ner_with(
        &dir.path().join("drugs"),
        &DRUG_LABELS,
        Some("B-DRUG"),
        32,
        2,
    );
    folder(dir.path(), TWO);
    // A batch delay long enough that concurrent calls share batches.
    let args = WorkerArgs {
        batch_delay_ms: 50,
        ..WorkerArgs::default()
    };
    let (server, _worker) = serve(dir.path(), args).await;
    let channel = server.channel().await;

    let models = list(&channel).await;
    let people = find(&models, "people", pb::ModelState::Ready);
    let drugs = find(&models, "drugs", pb::ModelState::Ready);
    assert_eq!((people.task.as_str(), people.default), ("ner", true));
    assert_eq!((drugs.task.as_str(), drugs.default), ("ner", false));
    assert_eq!(people.labels, ["PER", "ORG", "LOC", "MISC"]);
    assert_eq!(drugs.labels, ["DRUG"]);
    assert_eq!(
        (
            people.runtime.as_str(),
            people.precision.as_str(),
            people.architecture.as_str()
        ),
        ("libtorch", "fp32", "bert")
    );
    assert_eq!(people.version.len(), 12);
    assert_ne!(people.version, drugs.version);
    let enc = find(&models, "enc", pb::ModelState::Ready);
    assert_eq!((enc.task.as_str(), enc.default), ("encoder", true));

    let mut client = EntityExtractorClient::new(channel.clone());
    let answer = client
        .extract_entities(request(""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (answer.model.as_str(), labels(&answer)),
        ("people", vec!["PER".to_string()])
    );
    assert_eq!(answer.model_version, people.version);
    let answer = client
        .extract_entities(request("drugs"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (answer.model.as_str(), labels(&answer)),
        ("drugs", vec!["DRUG".to_string()])
    );
    let pinned = format!("drugs@{}", drugs.version);
    let answer = client
        .extract_entities(request(&pinned))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.model_version, drugs.version);

    // Unknown names list the known ones; a model of another role is named as such; a
    // version not served is a precondition.
    let err = client
        .extract_entities(request("nobody"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("model: ")
            && err.message().contains(r#"known: "drugs", "people""#),
        "{}",
        err.message()
    );
    let err = client.extract_entities(request("enc")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("[encoder]"), "{}", err.message());
    let err = client
        .extract_entities(request("drugs@000000000000"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains(&drugs.version), "{}", err.message());

    // Concurrent calls on both models: each answer comes from its own model, although the
    // calls were gathered into batches (a mixed batch would give one model's labels to
    // the other's callers).
    let calls: Vec<_> = (0..24)
        .map(|i| {
            let mut client = client.clone();
            let model = if i % 2 == 0 { "people" } else { "drugs" };
            tokio::spawn(async move {
                let answer = client
                    .extract_entities(request(model))
                    .await
                    .unwrap()
                    .into_inner();
                (model, answer)
            })
        })
        .collect();
    for call in calls {
        let (model, answer) = call.await.unwrap();
        let want = if model == "people" { "PER" } else { "DRUG" };
        assert_eq!(answer.model, model);
        assert_eq!(labels(&answer), [want], "{model}: {answer:?}");
    }
    let page = server.metrics().await;
    let batches = metric(&page, r#"gist_batch_size_count{queue="entities"}"#);
    let requests = metric(&page, r#"gist_batch_size_sum{queue="entities"}"#);
    assert!(
        requests > batches,
        "no batch held two calls: {requests} calls in {batches} batches"
    );
    assert!(
        page.contains(r#"gist_inference_duration_seconds_count{model="drugs",queue="entities"}"#),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_swaps_changed_models_and_a_broken_one_leaves_the_old_version_serving() {
    let dir = tempfile::tempdir().unwrap();
    ner_with(
        &dir.path().join("people"),
        &NER_LABELS,
        Some("B-PER"),
        32,
        2,
    );
    folder(
        dir.path(),
        "[encoder]\nname = \"enc\"\npath = \"enc\"\n[ner]\nname = \"people\"\npath = \"people\"\n",
    );
    let (server, worker) = serve(dir.path(), WorkerArgs::default()).await;
    let channel = server.channel().await;
    let mut client = EntityExtractorClient::new(channel.clone());
    let before = find(&list(&channel).await, "people", pb::ModelState::Ready).clone();

    // A reload with nothing changed loads nothing and keeps the version.
    let after = worker.reload().await.unwrap();
    assert_eq!(
        after
            .iter()
            .find(|m| m.name == "people")
            .unwrap()
            .info
            .as_ref()
            .unwrap()
            .version,
        before.version
    );

    // Retrained (other weights) and a second model added: both load, new calls use them.
    ner_with(
        &dir.path().join("people"),
        &NER_LABELS,
        Some("B-LOC"),
        32,
        2,
    );
    ner_with(
        &dir.path().join("drugs"),
        &DRUG_LABELS,
        Some("B-DRUG"),
        32,
        2,
    );
    std::fs::write(dir.path().join("models.toml"), TWO).unwrap();
    let reloaded = ModelsClient::new(channel.clone())
        .reload(pb::ReloadRequest {})
        .await
        .unwrap()
        .into_inner()
        .models;
    let people = find(&reloaded, "people", pb::ModelState::Ready).clone();
    assert_ne!(people.version, before.version);
    find(&reloaded, "drugs", pb::ModelState::Ready);
    let answer = client
        .extract_entities(request(""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (labels(&answer), answer.model_version.clone()),
        (vec!["LOC".to_string()], people.version.clone())
    );

    // Broken weights: FAILED with the error, in ListModels and a metric; the version
    // loaded before keeps serving.
    std::fs::write(
        dir.path().join("people/model.safetensors"),
        b"not a safetensors file",
    )
    .unwrap();
    let reloaded = worker.reload().await.unwrap();
    let failed = reloaded
        .iter()
        .find(|m| m.name == "people" && m.state == ModelState::Failed)
        .expect("people FAILED");
    assert!(
        failed
            .error
            .as_deref()
            .unwrap()
            .contains("cannot load model people"),
        "{failed:?}"
    );
    let listed = list(&channel).await;
    assert_eq!(
        find(&listed, "people", pb::ModelState::Ready).version,
        people.version
    );
    assert!(!find(&listed, "people", pb::ModelState::Failed)
        .error
        .is_empty());
    let answer = client
        .extract_entities(request("people"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (labels(&answer), answer.model_version),
        (vec!["LOC".to_string()], people.version.clone())
    );
    let page = server.metrics().await;
    assert_eq!(
        metric(
            &page,
            r#"gist_model_load_failures_total{model="people",role="ner"}"#
        ),
        1.0
    );

    // A manifest that does not parse changes nothing, and says why.
    std::fs::write(dir.path().join("models.toml"), "[[ner]\n").unwrap();
    let err = ModelsClient::new(channel.clone())
        .reload(pb::ReloadRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("models.toml"), "{}", err.message());
    assert_eq!(
        find(&list(&channel).await, "drugs", pb::ModelState::Ready).labels,
        ["DRUG"]
    );
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_reloads_under_load_without_dropping_a_call_and_memory_returns() {
    let dir = tempfile::tempdir().unwrap();
    // Big enough (about 50 MB of weights) that keeping an old version would show in RSS.
    let big = |label: &str| ner_with(&dir.path().join("people"), &NER_LABELS, Some(label), 512, 6);
    big("B-PER");
    let weights = std::fs::metadata(dir.path().join("people/model.safetensors"))
        .unwrap()
        .len();
    folder(
        dir.path(),
        "[encoder]\nname = \"enc\"\npath = \"enc\"\n[ner]\nname = \"people\"\npath = \"people\"\n",
    );
    let models = dir.path().to_str().unwrap().to_string();
    let server =
        ServerProcess::start(&["--models", &models, "--engine", "auto", "--threads", "1"]).await;
    let pid = server.pid();
    let channel = tonic::transport::Endpoint::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let version = |models: &[pb::ModelStatus]| {
        find(models, "people", pb::ModelState::Ready)
            .version
            .clone()
    };
    let old = version(&list(&channel).await);

    // A closed loop of 4 callers for the whole test.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let mut client = EntityExtractorClient::new(channel.clone());
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let answer = client.extract_entities(request("")).await;
                    answers.push(answer.map(|a| (a.into_inner(), Instant::now())));
                }
                answers
            })
        })
        .collect();
    // Warm: the callers have run before memory is measured.
    let mut warm = EntityExtractorClient::new(channel.clone());
    for _ in 0..20 {
        warm.extract_entities(request("")).await.unwrap();
    }
    let rss_before = rss(pid);

    // Retrain: new weights, SIGHUP, until the new version serves.
    big("B-LOC");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    until_async(|| async { version(&list(&channel).await) != old }).await;
    let new = version(&list(&channel).await);
    let swapped = Instant::now();
    // Calls admitted after the swap report the new version, and its labels.
    let answer = warm
        .extract_entities(request(""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (answer.model_version.as_str(), labels(&answer)),
        (new.as_str(), vec!["LOC".to_string()])
    );
    for _ in 0..20 {
        warm.extract_entities(request("")).await.unwrap();
    }
    let rss_after = rss(pid);

    // A broken retrain: FAILED, and the new version serves on.
    std::fs::write(dir.path().join("people/model.safetensors"), b"truncated").unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    until_async(|| async {
        list(&channel)
            .await
            .iter()
            .any(|m| m.name == "people" && m.state == pb::ModelState::Failed as i32)
    })
    .await;
    assert_eq!(version(&list(&channel).await), new);
    let answer = warm
        .extract_entities(request(""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.model_version, new);

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut calls = 0;
    for caller in callers {
        for answer in caller.await.unwrap() {
            let (answer, at) = answer.expect("every call under load ends OK");
            calls += 1;
            if at > swapped + std::time::Duration::from_secs(1) {
                assert_eq!(
                    answer.model_version, new,
                    "a call long after the swap ran on the old version"
                );
            }
        }
    }
    println!(
        "reload under load: {calls} calls, all OK; RSS {:.0} MB before the swap, {:.0} MB after it (weights {:.0} MB)",
        rss_before as f64 / 1e6,
        rss_after as f64 / 1e6,
        weights as f64 / 1e6
    );
    // The old version was released: RSS is back near where it was, well below old + new.
    assert!(
        rss_after < rss_before + weights / 2,
        "RSS {rss_after} after the swap vs {rss_before} before (weights {weights})"
    );
}

/// ListModels during the first load: the manifest's models are LOADING until the load ends,
/// and FAILED with the reason when it fails (it used to list nothing until then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_load_is_listed_as_loading_then_ready_or_failed() {
    use gist::engine::{Engine, Role};
    let expected = vec![
        (Role::Encoder, "enc".to_string()),
        (Role::Ner, "people".to_string()),
    ];
    let listed = |models: Vec<pb::ModelStatus>| -> Vec<(String, i32, String)> {
        models
            .into_iter()
            .map(|m| (m.name, m.state, m.error))
            .collect()
    };

    // A load held until the test lets it go.
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let worker = Worker::spawn_expecting(
        move || {
            wait.recv().unwrap();
            Ok(Box::new(gist::engine::fake::FakeEngine::new()) as Box<dyn Engine>)
        },
        expected.clone(),
        WorkerArgs::default(),
        Metrics::new(&Task::names()),
    );
    let server = TestServer::start(worker.clone(), Limits::default()).await;
    let channel = server.channel().await;
    let during = list(&channel).await;
    let loading = pb::ModelState::Loading as i32;
    assert_eq!(
        listed(during),
        vec![
            ("enc".to_string(), loading, String::new()),
            ("people".to_string(), loading, String::new()),
        ]
    );
    go.send(()).unwrap();
    worker.ready().await.unwrap();
    let after = list(&channel).await;
    assert!(!after.is_empty());
    assert!(
        after
            .iter()
            .all(|m| m.state == pb::ModelState::Ready as i32),
        "{after:?}"
    );

    // A load that fails: each expected model says why.
    let worker = Worker::spawn_expecting(
        || {
            Err(gist::error::Error::Manifest {
                path: "models/models.toml".into(),
                reason: "no such file".into(),
            })
        },
        expected,
        WorkerArgs::default(),
        Metrics::new(&Task::names()),
    );
    assert!(worker.ready().await.is_err());
    let failed = worker.models();
    assert_eq!(failed.len(), 2, "{failed:?}");
    for m in &failed {
        assert_eq!(m.state, ModelState::Failed, "{m:?}");
        assert!(
            m.error.as_deref().unwrap_or("").contains("no such file"),
            "{m:?}"
        );
    }
}
