//! The OCI image, built for real and run: deploy/image/stage.sh stages the binary under
//! test, its libraries and the default models; deploy/image/build-oci.sh builds
//! deploy/image/Containerfile on a debootstrap'd bookworm base with podman and saves an
//! OCI archive; umoci unpacks it into a runtime bundle. No container engine can run here,
//! so the test runs the bundle itself, as a runtime would: the image's entrypoint, user,
//! environment and working directory from the bundle's config.json, the root filesystem
//! mounted read-only, in a network namespace of its own. Then grpcurl calls it.
//! Needs root, podman, umoci, debootstrap and iproute2 (scripts/test-tools.sh), grpcurl
//! and the default models (make setup).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use crate::netns::{require_root, run};

const TAG: &str = "localhost/gist:test";

#[test]
fn the_image_serves_the_default_models_as_a_non_root_user_on_a_read_only_root() {
    require_root("the_image_serves_the_default_models_as_a_non_root_user_on_a_read_only_root");
    let repo = common::repo();
    let dir = tempfile::tempdir().unwrap();
    let stage = dir.path().join("stage");
    let archive = dir.path().join("gist.oci.tar");

    // Build: stage, then podman build + save.
    let started = Instant::now();
    run(
        "bash",
        &[
            repo.join("deploy/image/stage.sh").to_str().unwrap(),
            "--binary",
            env!("CARGO_BIN_EXE_gist"),
            "--models",
            common::default_models().to_str().unwrap(),
            stage.to_str().unwrap(),
        ],
    );
    let built = Command::new("bash")
        .arg(repo.join("deploy/image/build-oci.sh"))
        .args([&stage, &archive])
        .arg(TAG)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&built.stderr);
    assert!(built.status.success(), "build-oci.sh failed:\n{log}");
    eprintln!("image: {} (in {:.0?})", log.trim(), started.elapsed());
    std::fs::remove_dir_all(&stage).unwrap();

    // Unpack: the archive is a tar of an OCI image layout; umoci makes a runtime bundle.
    let layout = dir.path().join("layout");
    let bundle = dir.path().join("bundle");
    std::fs::create_dir(&layout).unwrap();
    run(
        "tar",
        &[
            "-xf",
            archive.to_str().unwrap(),
            "-C",
            layout.to_str().unwrap(),
        ],
    );
    std::fs::remove_file(&archive).unwrap();
    let tags = run("umoci", &["ls", "--layout", layout.to_str().unwrap()]);
    let tag = tags
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no tag in the saved image"))
        .trim()
        .to_string();
    run(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:{tag}", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("config.json")).unwrap())
            .unwrap();
    let process = &config["process"];
    let args: Vec<String> = strings(&process["args"]);
    let env: Vec<String> = strings(&process["env"]);
    let (uid, gid) = (
        process["user"]["uid"].as_u64().unwrap(),
        process["user"]["gid"].as_u64().unwrap(),
    );
    let cwd = process["cwd"].as_str().unwrap_or("/").to_string();
    assert_eq!(args, ["/opt/gist/bin/gist", "serve"], "{config}");
    assert_eq!((uid, gid), (65532, 65532), "the image's user: {config}");
    assert!(
        env.contains(&"GIST_LISTEN=0.0.0.0:50051".to_string()),
        "{env:?}"
    );
    let rootfs = bundle.join("rootfs");

    // Run it as a runtime would, in a network namespace of its own.
    let ns = format!("gist-img-{}", std::process::id());
    let _ns = Namespace::add(&ns);
    let log_path = dir.path().join("serve.log");
    let mut server = Command::new("ip")
        .args(["netns", "exec", &ns, "unshare", "--mount", "--", "sh", "-c"])
        .arg(CONTAINER_SH)
        .arg("container")
        .arg(&rootfs)
        .args(["env", "-i"])
        .args(&env)
        .args(["unshare", "--root"])
        .arg(&rootfs)
        .args([
            "--wd",
            &cwd,
            "--setgid",
            &gid.to_string(),
            "--setuid",
            &uid.to_string(),
            "--",
        ])
        .args(&args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let guard = KillOnDrop(server.id());

    let grpcurl = |extra: &[&str], stdin: Option<&str>| -> std::process::Output {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &ns])
            .arg(common::grpcurl())
            .args(["-plaintext", "-max-time", "20"])
            .args(extra);
        if stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(text) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    };

    // Ready once the models in the image are loaded: health says so.
    let start = Instant::now();
    loop {
        let out = grpcurl(
            &[
                "-d",
                r#"{"service":"gist.v1.Analyzer"}"#,
                "127.0.0.1:50051",
                "grpc.health.v1.Health/Check",
            ],
            None,
        );
        if String::from_utf8_lossy(&out.stdout).contains("\"SERVING\"") {
            break;
        }
        if let Ok(Some(status)) = server.try_wait() {
            panic!(
                "the image's gist exited ({status}) before serving:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "not SERVING after 120 s:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("listening") && l.contains("0.0.0.0:50051")),
        "gist should listen on 0.0.0.0:50051 (JSON logs, from the image's environment):\n{log}"
    );

    // The process: the image's user, no capabilities, no supplementary groups, and a
    // read-only root filesystem.
    let pid = server.id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(field("Uid:"), ["65532"; 4], "{status}");
    assert_eq!(field("Gid:"), ["65532"; 4], "{status}");
    assert!(field("Groups:").is_empty(), "{status}");
    assert_eq!(field("CapEff:"), ["0000000000000000"], "{status}");
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let root = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("no / in {mounts}"));
    assert!(
        root.split_whitespace()
            .nth(5)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "the root filesystem should be read-only: {root}"
    );

    // Calls, with the image's own models.
    let article = common::khan_li();
    let request = serde_json::json!({"text": article, "mode": "SUMMARY_MODE_EXTRACTIVE", "max_key_points": 3});
    let out = grpcurl(
        &["-d", "@", "127.0.0.1:50051", "gist.v1.Summarizer/Summarize"],
        Some(&request.to_string()),
    );
    let (stdout, stderr) = common::outputs(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let points = summary["keyPoints"].as_array().unwrap();
    assert_eq!(points.len(), 3, "{stdout}");
    for point in points {
        let text = point["text"].as_str().unwrap();
        assert!(
            article.contains(text),
            "not a sentence of the article: {text}"
        );
    }
    let request = serde_json::json!({"text": article});
    let out = grpcurl(
        &[
            "-d",
            "@",
            "127.0.0.1:50051",
            "gist.v1.EntityExtractor/ExtractEntities",
        ],
        Some(&request.to_string()),
    );
    let (stdout, stderr) = common::outputs(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("\"Imran Khan\"") && stdout.contains("\"Li Keqiang\""),
        "{stdout}"
    );

    // SIGTERM: it drains and exits 0.
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "no exit 40 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::mem::forget(guard); // reaped: its pid is no longer ours to signal
    assert!(
        status.success(),
        "{status}:\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
}

/// In a fresh mount namespace: the rootfs bound onto itself with /proc, /sys, /dev and a
/// tmpfs /tmp (what a runtime provides), then made read-only; then the rest of the
/// command line, which enters it as the image's user.
const CONTAINER_SH: &str = r#"set -e
r=$1; shift
mount --make-rprivate /
mount --bind "$r" "$r"
mount -t proc proc "$r/proc"
mount --rbind /sys "$r/sys"
mount --rbind /dev "$r/dev"
mount -t tmpfs -o mode=1777,size=64m tmpfs "$r/tmp"
mount -o remount,bind,ro "$r"
exec "$@"
"#;

fn strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// A network namespace with only loopback up, removed on drop.
struct Namespace(String);

impl Namespace {
    fn add(name: &str) -> Namespace {
        run("ip", &["netns", "add", name]);
        run("ip", &["-n", name, "link", "set", "lo", "up"]);
        Namespace(name.to_string())
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// SIGKILL the server if the test fails before it stops it.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2); the pid is our child's (a no-op once it has been reaped).
        unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
    }
}
