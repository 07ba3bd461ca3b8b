//! The Kubernetes manifests (deploy/kubernetes), checked offline as CI does: rendered by
//! `kubectl kustomize`, validated strictly against Kubernetes' schemas by
//! kubernetes-validate, and checked for what a schema cannot see (deploy/kubernetes/check.py:
//! probes on the gRPC port, the grace period longer than preStop + the drain, the
//! security context, selectors, the autoscaling metric). Needs kubectl and the deploy
//! venv (scripts/deploy-venv.sh, run by make test).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common;

/// The Python of the deploy venv that scripts/deploy-venv.sh prepares.
pub fn deploy_python() -> PathBuf {
    let python = common::repo().join(".tools/deploy-venv/bin/python");
    assert!(
        python.is_file(),
        "the deploy venv is missing at {}: run scripts/deploy-venv.sh (make test does)",
        python.display()
    );
    python
}

fn check(manifests: &Path) -> Output {
    Command::new(deploy_python())
        .arg(common::repo().join("deploy/kubernetes/check.py"))
        .arg("--manifests")
        .arg(manifests)
        .output()
        .unwrap()
}

#[test]
fn the_kubernetes_manifests_render_and_validate_offline() {
    let out = check(&common::repo().join("deploy/kubernetes"));
    let (stdout, stderr) = common::outputs(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("objects in 2 kustomizations valid"),
        "{stdout}"
    );
}

#[test]
fn the_manifest_check_catches_a_grace_period_shorter_than_the_drain_and_an_unknown_field() {
    // A copy with two mistakes a cluster would not report until the worst moment.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&common::repo().join("deploy/kubernetes"), dir.path());
    let deployment = dir.path().join("base/deployment.yaml");
    let text = std::fs::read_to_string(&deployment).unwrap();
    let broken = text
        .replace(
            "terminationGracePeriodSeconds: 45",
            "terminationGracePeriodSeconds: 30",
        )
        .replace(
            "allowPrivilegeEscalation: false",
            "allowPrivilegeEscalation: false\n            allowPrivilegeEscalations: false",
        );
    assert_ne!(
        text, broken,
        "the test's edits no longer match deployment.yaml"
    );
    std::fs::write(&deployment, broken).unwrap();
    let out = check(dir.path());
    let (stdout, stderr) = common::outputs(&out);
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("terminationGracePeriodSeconds 30 must exceed preStop 5 s + GIST_DRAIN_TIMEOUT_SECS 30 s"),
        "{stderr}"
    );
    assert!(stderr.contains("allowPrivilegeEscalations"), "{stderr}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
