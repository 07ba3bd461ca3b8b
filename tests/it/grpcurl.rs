//! The real client users test with: grpcurl 1.8.6 (reflection v1alpha) against a server
//! running the default models, driven exactly as the README shows.

use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_services_and_summarizes_the_khan_li_article() {
    let server = crate::common::TestServer::with_default_models().await;
    let addr = server.addr.to_string();
    let grpcurl = crate::common::grpcurl();

    let list = tokio::task::spawn_blocking({
        let (grpcurl, addr) = (grpcurl.clone(), addr.clone());
        move || {
            Command::new(grpcurl)
                .args(["-plaintext", &addr, "list"])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "grpcurl list failed: {}",
        String::from_utf8_lossy(&list.stderr)
    );
    for service in [
        "gist.v1.EntityExtractor",
        "gist.v1.Models",
        "gist.v1.Summarizer",
        "grpc.health.v1.Health",
    ] {
        assert!(
            stdout.lines().any(|l| l == service),
            "{service} missing from:\n{stdout}"
        );
    }

    // The README's command: grpcurl -plaintext -d @ ADDR gist.v1.Summarizer/Summarize < examples/request.json
    let call = readme_call(&grpcurl, &addr, "gist.v1.Summarizer/Summarize").await;
    assert!(
        call.status.success(),
        "grpcurl Summarize failed: {}",
        String::from_utf8_lossy(&call.stderr)
    );
    let response: serde_json::Value = serde_json::from_slice(&call.stdout).unwrap();
    assert_eq!(response["id"], "khan-li-call");
    assert_eq!(response["mode"], "SUMMARY_MODE_EXTRACTIVE");
    let text = crate::common::khan_li();
    let chars: Vec<char> = text.chars().collect();
    let key_points = response["keyPoints"].as_array().unwrap();
    assert_eq!(key_points.len(), 3);
    for k in key_points {
        let (start, end) = (
            k["start"].as_u64().unwrap() as usize,
            k["end"].as_u64().unwrap() as usize,
        );
        assert_eq!(
            chars[start..end].iter().collect::<String>(),
            k["text"].as_str().unwrap()
        );
    }

    // The README's Analyze command on the same request: extractive key points are
    // sentences of the source, so every name in them is mentioned there.
    let analyze = readme_call(&grpcurl, &addr, "gist.v1.Analyzer/Analyze").await;
    assert!(
        analyze.status.success(),
        "grpcurl Analyze failed: {}",
        String::from_utf8_lossy(&analyze.stderr)
    );
    let response: serde_json::Value = serde_json::from_slice(&analyze.stdout).unwrap();
    assert_eq!(response["id"], "khan-li-call");
    let checked = response["summaryEntities"].as_array().unwrap();
    assert!(!checked.is_empty(), "{response}");
    for entity in checked {
        assert_eq!(entity["supported"], true, "{entity}");
        for m in entity["mentions"].as_array().unwrap() {
            let (start, end) = (
                m["start"].as_u64().unwrap_or(0) as usize,
                m["end"].as_u64().unwrap() as usize,
            );
            let found: String = chars[start..end].iter().collect();
            assert_eq!(found, entity["entity"]["text"].as_str().unwrap());
        }
    }
    assert!(response.get("unsupportedEntities").is_none(), "{response}");

    // The README's model commands: ListModels, a call naming the NER model, an unknown
    // name, and a reload that finds nothing changed.
    let run = |args: Vec<String>| {
        let grpcurl = grpcurl.clone();
        tokio::task::spawn_blocking(move || Command::new(grpcurl).args(args).output().unwrap())
    };
    let plain = |rest: &[&str]| -> Vec<String> {
        std::iter::once("-plaintext")
            .chain(rest.iter().copied())
            .map(String::from)
            .collect()
    };
    let list = run(plain(&[&addr, "gist.v1.Models/ListModels"]))
        .await
        .unwrap();
    let models: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let ner = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["task"] == "ner")
        .unwrap()
        .clone();
    assert_eq!(ner["name"], "conll03-minilm-ner");
    assert_eq!(
        (ner["state"].as_str(), ner["default"].as_bool()),
        (Some("MODEL_STATE_READY"), Some(true))
    );
    assert_eq!(
        ner["labels"],
        serde_json::json!(["PER", "ORG", "LOC", "MISC"])
    );
    let named = run(plain(&[
        "-d",
        r#"{"text": "Imran Khan met Li Keqiang in Islamabad.", "model": "conll03-minilm-ner"}"#,
        &addr,
        "gist.v1.EntityExtractor/ExtractEntities",
    ]))
    .await
    .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&named.stdout).unwrap();
    assert_eq!(answer["modelVersion"], ner["version"]);
    let unknown = run(plain(&[
        "-d",
        r#"{"text": "Imran Khan met Li Keqiang.", "model": "bert-large-ner"}"#,
        &addr,
        "gist.v1.EntityExtractor/ExtractEntities",
    ]))
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("InvalidArgument") && stderr.contains(r#"(known: "conll03-minilm-ner")"#),
        "{stderr}"
    );
    let reload = run(plain(&[&addr, "gist.v1.Models/Reload"])).await.unwrap();
    let reloaded: serde_json::Value = serde_json::from_slice(&reload.stdout).unwrap();
    assert_eq!(reloaded, models, "nothing changed, so nothing was reloaded");

    // Health through grpcurl, as a load balancer probe would.
    let health = tokio::task::spawn_blocking(move || {
        Command::new(grpcurl)
            .args([
                "-plaintext",
                "-d",
                r#"{"service":"gist.v1.Summarizer"}"#,
                &addr,
                "grpc.health.v1.Health/Check",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        String::from_utf8_lossy(&health.stdout).contains("\"SERVING\""),
        "{}",
        String::from_utf8_lossy(&health.stdout)
    );
}

/// The README's form of a call: `grpcurl -plaintext -d @ ADDR METHOD < examples/request.json`.
async fn readme_call(grpcurl: &std::path::Path, addr: &str, method: &str) -> std::process::Output {
    let (grpcurl, addr, method) = (grpcurl.to_path_buf(), addr.to_string(), method.to_string());
    tokio::task::spawn_blocking(move || {
        let request =
            std::fs::File::open(crate::common::repo().join("examples/request.json")).unwrap();
        Command::new(grpcurl)
            .args(["-plaintext", "-d", "@", &addr, &method])
            .stdin(request)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}
