//! Transport security against the real server on 127.0.0.1:0 with the fake engine: TLS,
//! mutual TLS and bearer tokens accept and refuse as documented, health stays open, and
//! bad files stop start-up with one line. The certificates are generated here (rcgen).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use gist::engine::fake::FakeEngine;
use gist::engine::Engine;
use gist::pb;
use gist::pb::summarizer_client::SummarizerClient;
use gist::server::security::SecurityArgs;
use gist::server::security::{Security, INVALID_TOKEN, MISSING_CLIENT_CERT, MISSING_TOKEN};
use gist::server::ServerArgs;
use gist::worker::{Worker, WorkerArgs};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

const TOKEN: &str = "s3cret-token-for-the-tests-0123456789";
const OTHER_TOKEN: &str = "second-token-also-accepted-9876543210";

/// A CA, a server certificate for localhost and 127.0.0.1, a client certificate from the
/// same CA and one from an unrelated CA, written as PEM files the way an operator has them.
struct Pki {
    dir: tempfile::TempDir,
}

fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

fn leaf(
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'static, KeyPair>,
) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages.push(usage);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        let (ca_pem, issuer) = ca("gist test CA");
        let (server_pem, server_key) = leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            &issuer,
        );
        let (client_pem, client_key) =
            leaf(&["client"], ExtendedKeyUsagePurpose::ClientAuth, &issuer);
        let (_, rogue_issuer) = ca("somebody else's CA");
        let (rogue_pem, rogue_key) = leaf(
            &["rogue"],
            ExtendedKeyUsagePurpose::ClientAuth,
            &rogue_issuer,
        );
        write("ca.pem", &ca_pem);
        write("server.pem", &server_pem);
        write("server.key", &server_key);
        write("client.pem", &client_pem);
        write("client.key", &client_key);
        write("rogue.pem", &rogue_pem);
        write("rogue.key", &rogue_key);
        write(
            "tokens",
            &format!("# gist clients\n{TOKEN}\n\n# batch jobs\n  {OTHER_TOKEN}  \n"),
        );
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    fn tls_args(&self) -> SecurityArgs {
        SecurityArgs {
            tls_cert: Some(self.path("server.pem")),
            tls_key: Some(self.path("server.key")),
            ..SecurityArgs::default()
        }
    }

    fn mtls_args(&self) -> SecurityArgs {
        SecurityArgs {
            tls_client_ca: Some(self.path("ca.pem")),
            ..self.tls_args()
        }
    }

    /// A client TLS config trusting the test CA, with the named client certificate.
    fn client_tls(&self, identity: Option<&str>) -> ClientTlsConfig {
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.read("ca.pem")))
            .domain_name("localhost");
        match identity {
            Some(name) => config.identity(Identity::from_pem(
                self.read(&format!("{name}.pem")),
                self.read(&format!("{name}.key")),
            )),
            None => config,
        }
    }
}

/// A server on 127.0.0.1:0 with the fake engine and `args`; stops when dropped.
struct Server {
    addr: SocketAddr,
    _shutdown_tx: tokio::sync::oneshot::Sender<()>,
}

async fn start(security: SecurityArgs) -> Server {
    let args = ServerArgs {
        security,
        ..ServerArgs::default()
    };
    let worker = Worker::spawn(
        || Ok(Box::new(FakeEngine::new()) as Box<dyn Engine>),
        WorkerArgs {
            queue_capacity: 8,
            ..WorkerArgs::default()
        },
        gist::metrics::Metrics::new(&gist::tasks::Task::names()),
    );
    worker.ready().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let state = gist::server::AppState::new(worker, gist::server::Limits::default(), &args);
    tokio::spawn(async move {
        gist::server::serve(listener, state, args, async {
            let _ = shutdown_rx.await;
        })
        .await
        .unwrap();
    });
    Server {
        addr,
        _shutdown_tx: shutdown_tx,
    }
}

impl Server {
    async fn plaintext(&self) -> Result<Channel, tonic::transport::Error> {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
    }

    async fn tls(&self, config: ClientTlsConfig) -> Result<Channel, tonic::transport::Error> {
        Endpoint::from_shared(format!("https://{}", self.addr))
            .unwrap()
            .tls_config(config)
            .unwrap()
            .connect()
            .await
    }
}

fn article() -> pb::SummarizeRequest {
    pb::SummarizeRequest {
        text: "Mr. Smith went to Washington on Monday. He met the president there.".into(),
        ..Default::default()
    }
}

fn with_bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

async fn summarize(
    channel: Channel,
    request: tonic::Request<pb::SummarizeRequest>,
) -> Result<pb::SummarizeResponse, tonic::Status> {
    SummarizerClient::new(channel)
        .summarize(request)
        .await
        .map(|r| r.into_inner())
}

/// A connection that must not get anywhere: it fails to connect, or its call fails at
/// the transport, never with an answer from gist.
async fn assert_refused(channel: Result<Channel, tonic::transport::Error>, what: &str) {
    let Ok(channel) = channel else { return };
    let status = summarize(channel, tonic::Request::new(article()))
        .await
        .expect_err(what);
    assert!(
        matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::Internal
        ),
        "{what}: {status:?}"
    );
}

#[tokio::test]
async fn tls_serves_clients_that_trust_the_ca_and_refuses_plaintext() {
    let pki = Pki::new();
    let server = start(pki.tls_args()).await;

    let channel = server.tls(pki.client_tls(None)).await.unwrap();
    let summary = summarize(channel.clone(), tonic::Request::new(article()))
        .await
        .unwrap();
    assert!(!summary.key_points.is_empty());
    assert_eq!(
        crate::common::summarizer_health(channel).await,
        ServingStatus::Serving
    );

    assert_refused(server.plaintext().await, "plaintext against TLS").await;
    // A client that does not trust the server's CA refuses the server.
    let stranger = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(
            pki.read("rogue.pem"), // a leaf of another CA, not ours
        ))
        .domain_name("localhost");
    assert_refused(server.tls(stranger).await, "untrusted server certificate").await;
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_from_the_ca_except_for_health() {
    let pki = Pki::new();
    let server = start(pki.mtls_args()).await;

    let with_cert = server.tls(pki.client_tls(Some("client"))).await.unwrap();
    summarize(with_cert.clone(), tonic::Request::new(article()))
        .await
        .unwrap();
    assert_eq!(
        crate::common::summarizer_health(with_cert).await,
        ServingStatus::Serving
    );

    let without_cert = server.tls(pki.client_tls(None)).await.unwrap();
    let status = summarize(without_cert.clone(), tonic::Request::new(article()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(status.message(), MISSING_CLIENT_CERT);
    // Probes need no certificate.
    assert_eq!(
        crate::common::summarizer_health(without_cert).await,
        ServingStatus::Serving
    );

    assert_refused(
        server.tls(pki.client_tls(Some("rogue"))).await,
        "a client certificate from another CA",
    )
    .await;
    assert_refused(server.plaintext().await, "plaintext against mTLS").await;
}

#[tokio::test]
async fn bearer_tokens_guard_the_api_and_reflection_but_not_health() {
    let pki = Pki::new();
    let server = start(SecurityArgs {
        auth_tokens: Some(pki.path("tokens")),
        ..SecurityArgs::default()
    })
    .await;
    let channel = server.plaintext().await.unwrap();

    let status = summarize(channel.clone(), tonic::Request::new(article()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), MISSING_TOKEN);

    let status = summarize(channel.clone(), with_bearer(article(), "not-the-token"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), INVALID_TOKEN);

    summarize(channel.clone(), with_bearer(article(), TOKEN))
        .await
        .unwrap();
    summarize(channel.clone(), with_bearer(article(), OTHER_TOKEN))
        .await
        .unwrap();
    let mut extractor =
        gist::pb::entity_extractor_client::EntityExtractorClient::new(channel.clone());
    let entities = pb::ExtractEntitiesRequest {
        text: "Imran Khan met Li Keqiang.".into(),
        ..Default::default()
    };
    let status = extractor
        .extract_entities(entities.clone())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    extractor
        .extract_entities(with_bearer(entities, TOKEN))
        .await
        .unwrap();

    // Reflection describes the API and asks for the same token.
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    let list = || {
        tokio_stream::iter([tonic_reflection::pb::v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }])
    };
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let status = reflection.server_reflection_info(list()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    reflection
        .server_reflection_info(with_bearer(list(), TOKEN))
        .await
        .unwrap();

    assert_eq!(
        crate::common::summarizer_health(channel).await,
        ServingStatus::Serving
    );
}

#[tokio::test]
async fn mtls_and_tokens_together_need_both() {
    let pki = Pki::new();
    let server = start(SecurityArgs {
        auth_tokens: Some(pki.path("tokens")),
        ..pki.mtls_args()
    })
    .await;
    let with_cert = server.tls(pki.client_tls(Some("client"))).await.unwrap();
    let without_cert = server.tls(pki.client_tls(None)).await.unwrap();

    summarize(with_cert.clone(), with_bearer(article(), TOKEN))
        .await
        .unwrap();
    let status = summarize(with_cert, tonic::Request::new(article()))
        .await
        .unwrap_err();
    assert_eq!(status.message(), MISSING_TOKEN);
    let status = summarize(without_cert.clone(), with_bearer(article(), TOKEN))
        .await
        .unwrap_err();
    assert_eq!(status.message(), MISSING_CLIENT_CERT);
    assert_eq!(
        crate::common::summarizer_health(without_cert).await,
        ServingStatus::Serving
    );
}

fn load_error(args: SecurityArgs) -> String {
    Security::load(&args).unwrap_err().to_string()
}

#[test]
fn unusable_files_are_named_with_their_flag() {
    let pki = Pki::new();
    let p = |name: &str| pki.path(name).display().to_string();

    let missing = SecurityArgs {
        tls_cert: Some(pki.path("nope.pem")),
        ..pki.tls_args()
    };
    let err = load_error(missing);
    assert!(
        err.starts_with(&format!("cannot read --tls-cert {}: ", p("nope.pem"))),
        "{err}"
    );

    let swapped = SecurityArgs {
        tls_cert: Some(pki.path("server.key")),
        tls_key: Some(pki.path("server.pem")),
        ..SecurityArgs::default()
    };
    let err = load_error(swapped);
    assert!(
        err.starts_with(&format!(
            "--tls-cert {}: no certificate in it",
            p("server.key")
        )),
        "{err}"
    );

    let key_is_a_cert = SecurityArgs {
        tls_key: Some(pki.path("ca.pem")),
        ..pki.tls_args()
    };
    let err = load_error(key_is_a_cert);
    assert!(
        err.starts_with(&format!("--tls-key {}: no private key in it", p("ca.pem"))),
        "{err}"
    );

    let other_key = SecurityArgs {
        tls_key: Some(pki.path("client.key")),
        ..pki.tls_args()
    };
    let err = load_error(other_key);
    assert!(
        err.starts_with(&format!(
            "--tls-key {}: does not fit the certificate in --tls-cert {}",
            p("client.key"),
            p("server.pem")
        )),
        "{err}"
    );

    let bad_ca = SecurityArgs {
        tls_client_ca: Some(pki.path("tokens")),
        ..pki.tls_args()
    };
    let err = load_error(bad_ca);
    assert!(
        err.starts_with(&format!("--tls-client-ca {}: no certificate", p("tokens"))),
        "{err}"
    );

    std::fs::write(pki.path("empty"), "# nobody yet\n\n").unwrap();
    let no_tokens = SecurityArgs {
        auth_tokens: Some(pki.path("empty")),
        ..SecurityArgs::default()
    };
    let err = load_error(no_tokens);
    assert!(
        err.starts_with(&format!("--auth-tokens {}: no token in it", p("empty"))),
        "{err}"
    );

    let ca_without_tls = SecurityArgs {
        tls_client_ca: Some(pki.path("ca.pem")),
        ..SecurityArgs::default()
    };
    assert!(
        load_error(ca_without_tls).starts_with("--tls-client-ca needs --tls-cert and --tls-key")
    );
}

#[test]
fn the_binary_stops_with_one_line_naming_the_file_and_flag() {
    let pki = Pki::new();
    let output = Command::new(env!("CARGO_BIN_EXE_gist"))
        .args(["serve", "--engine", "fake", "--listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(pki.path("server.pem"))
        .arg("--tls-key")
        .arg(pki.path("client.key"))
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .skip_while(|l| !l.starts_with("Error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].starts_with(&format!(
            "Error: --tls-key {}: does not fit the certificate in --tls-cert",
            pki.path("client.key").display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("listening"), "{stderr}");
}

fn grpcurl() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/grpcurl");
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "note: {} is missing (`make setup`); skipping the grpcurl check",
            path.display()
        );
        None
    }
}

/// The README's commands, as pasted: grpcurl with the CA, a client certificate and a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_works_with_the_readme_flags() {
    let Some(grpcurl) = grpcurl() else { return };
    let pki = Pki::new();
    let server = start(SecurityArgs {
        auth_tokens: Some(pki.path("tokens")),
        ..pki.mtls_args()
    })
    .await;
    let addr = server.addr.to_string();
    let run = |args: Vec<String>| {
        let grpcurl = grpcurl.clone();
        let dir = pki.dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            Command::new(grpcurl)
                .current_dir(dir)
                .args(args)
                .output()
                .unwrap()
        })
    };
    let creds = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "-cacert",
            "ca.pem",
            "-cert",
            "client.pem",
            "-key",
            "client.key",
            "-H",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("authorization: Bearer {TOKEN}"));
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };

    let list = run(creds(&[&addr, "list"])).await.unwrap();
    let stdout = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(
        stdout.lines().any(|l| l == "gist.v1.Summarizer"),
        "{stdout}"
    );

    let call = run(creds(&[
        "-d",
        r#"{"text": "Mr. Smith went to Washington on Monday. He met the president there."}"#,
        &addr,
        "gist.v1.Summarizer/Summarize",
    ]))
    .await
    .unwrap();
    assert!(
        call.status.success(),
        "{}",
        String::from_utf8_lossy(&call.stderr)
    );
    let response: serde_json::Value = serde_json::from_slice(&call.stdout).unwrap();
    assert!(response["keyPoints"]
        .as_array()
        .is_some_and(|k| !k.is_empty()));

    // Without the token: UNAUTHENTICATED, and grpcurl says so.
    let no_token = run([
        "-cacert",
        "ca.pem",
        "-cert",
        "client.pem",
        "-key",
        "client.key",
        "-d",
        r#"{"text": "Hello there."}"#,
        &addr,
        "gist.v1.Summarizer/Summarize",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect())
    .await
    .unwrap();
    assert!(!no_token.status.success());
    let stderr = String::from_utf8_lossy(&no_token.stderr);
    assert!(stderr.contains("Unauthenticated"), "{stderr}");
    assert!(stderr.contains("missing bearer token"), "{stderr}");

    // Health through grpcurl: grpcurl looks the method up by reflection, which needs the
    // credentials; probes with the health API built in need none (tested above).
    let probe = run(creds(&[
        "-d",
        r#"{"service":"gist.v1.Summarizer"}"#,
        &addr,
        "grpc.health.v1.Health/Check",
    ]))
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&probe.stdout);
    assert!(
        stdout.contains("\"SERVING\""),
        "{stdout}{}",
        String::from_utf8_lossy(&probe.stderr)
    );
}

/// `gist batch` against a server with mutual TLS and tokens: the flags of "Batch jobs"
/// work, and a missing token stops the run at once (it is not retried for a minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gist_batch_speaks_mtls_with_a_token_and_stops_at_once_without_one() {
    let pki = Pki::new();
    let server = start(SecurityArgs {
        auth_tokens: Some(pki.path("tokens")),
        ..pki.mtls_args()
    })
    .await;
    let input = pki.path("in.jsonl");
    let docs: String = (0..5)
        .map(|i| {
            format!("{{\"id\": \"d{i}\", \"text\": \"Khan met Li in Beijing on day {i}.\"}}\n")
        })
        .collect();
    std::fs::write(&input, docs).unwrap();
    let url = format!("https://localhost:{}", server.addr.port());
    let run = |output: &str, token: Option<&'static str>| {
        let args: Vec<String> = [
            "batch",
            "--task",
            "entities",
            "--input",
            input.to_str().unwrap(),
            "--output",
            pki.path(output).to_str().unwrap(),
            "--endpoint",
            &url,
            "--tls-ca",
            pki.path("ca.pem").to_str().unwrap(),
            "--tls-cert",
            pki.path("client.pem").to_str().unwrap(),
            "--tls-key",
            pki.path("client.key").to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> = token.map(|t| ("GIST_TOKEN", t)).into_iter().collect();
            crate::common::gist(&args, &env, "")
        })
    };
    let out = run("ok.jsonl", Some(TOKEN)).await.unwrap();
    let (_, stderr) = crate::common::outputs(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("gist batch: 5 done"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(pki.path("ok.jsonl"))
            .unwrap()
            .lines()
            .count(),
        5
    );

    let out = run("refused.jsonl", None).await.unwrap();
    let (_, stderr) = crate::common::outputs(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(" 0 retries"),
        "a refusal should not be retried: {stderr}"
    );
    let errors = std::fs::read_to_string(pki.path("refused.jsonl.errors.jsonl")).unwrap();
    assert_eq!(errors.lines().count(), 5, "{errors}");
    assert!(errors.contains("UNAUTHENTICATED"), "{errors}");
    assert!(errors.contains(MISSING_TOKEN), "{errors}");
}
