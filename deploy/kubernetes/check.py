#!/usr/bin/env python3
"""Check the Kubernetes manifests offline, as CI does: render each kustomization with
`kubectl kustomize`, validate every object against Kubernetes' OpenAPI schema with
kubernetes-validate (strict: unknown fields are errors), and check what the schema cannot
see: the probes, the drain timing, the security context, the selectors and the
autoscaling metric all agree with each other and with gist.

Usage: .tools/deploy-venv/bin/python deploy/kubernetes/check.py [--kubectl KUBECTL]
           [--k8s VERSION] [--manifests DIR]
(--manifests: a copy of deploy/kubernetes to check instead, as the tests do.)
Exits 1 naming every problem found. CRDs (the Prometheus Operator's ServiceMonitor) have
no schema in kubernetes-validate: their fields are checked here instead.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
KUSTOMIZATIONS = ["base", "overlays/models-volume"]
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
# Checked against the newest schema kubernetes-validate bundles (1.37 for its 1.37.0) and
# an old one that clusters still run: the manifests use nothing newer than native gRPC
# probes (1.24) and PodDisruptionBudget policy/v1 (1.21).
DEFAULT_VERSION = kubernetes_validate.latest_version()
OLDEST_VERSION = "1.27.0"

problems: list[str] = []


def problem(where: str, what: str) -> None:
    problems.append(f"{where}: {what}")


def render(kubectl: str, folder: Path) -> list[dict[str, Any]]:
    out = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"check.py: kubectl kustomize {folder} failed:\n{out.stderr}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def name(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def validate(docs: list[dict[str, Any]], version: str, where: str) -> None:
    for doc in docs:
        if (doc.get("apiVersion"), doc.get("kind")) in CRDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            path = "/".join(str(p) for p in err.path)
            problem(f"{where} {name(doc)} (Kubernetes {version})", f"{path}: {err.message}")
        except kubernetes_validate.SchemaNotFoundError as err:
            problem(f"{where} {name(doc)}", f"no schema: {err}")


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def check_deployment(d: dict[str, Any], where: str) -> None:
    spec = d["spec"]["template"]["spec"]
    pod_labels = d["spec"]["template"]["metadata"]["labels"]
    if not matches(d["spec"]["selector"]["matchLabels"], pod_labels):
        problem(where, "the Deployment's selector does not match its pod labels")
    (c,) = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if set(ports) != {"grpc", "metrics"}:
        problem(where, f"container ports should be grpc and metrics, not {sorted(ports)}")
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"]:
        grpc = c.get(probe, {}).get("grpc")
        if grpc is None:
            problem(where, f"{probe} should be a native gRPC probe (grpc.health.v1)")
        elif grpc.get("port") != ports.get("grpc"):
            problem(where, f"{probe} probes port {grpc.get('port')}, not the grpc port {ports.get('grpc')}")
    # Timing: preStop, then SIGTERM and the drain, all inside the grace period.
    env = env_of(c)
    drain = int(env.get("GIST_DRAIN_TIMEOUT_SECS", "30"))
    command = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pre_stop = int(command[-1]) if command[:1] == ["/bin/sleep"] and command[-1].isdigit() else None
    if pre_stop is None:
        problem(where, f"preStop should be /bin/sleep SECONDS, not {command}")
        pre_stop = 0
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if grace <= pre_stop + drain:
        problem(
            where,
            f"terminationGracePeriodSeconds {grace} must exceed preStop {pre_stop} s + "
            f"GIST_DRAIN_TIMEOUT_SECS {drain} s, or the drain is cut short by SIGKILL",
        )
    # Security: non-root, read-only root, no escalation, no capabilities.
    pod_sc, sc = spec.get("securityContext", {}), c.get("securityContext", {})
    if not (pod_sc.get("runAsNonRoot") or sc.get("runAsNonRoot")):
        problem(where, "runAsNonRoot must be true")
    if (sc.get("runAsUser") or pod_sc.get("runAsUser")) != 65532:
        problem(where, "runAsUser should be the image's user, 65532")
    if sc.get("readOnlyRootFilesystem") is not True:
        problem(where, "readOnlyRootFilesystem must be true")
    if sc.get("allowPrivilegeEscalation") is not False:
        problem(where, "allowPrivilegeEscalation must be false")
    if sc.get("capabilities", {}).get("drop") != ["ALL"]:
        problem(where, "capabilities should drop ALL")
    resources = c.get("resources", {})
    for kind in ["requests", "limits"]:
        if "memory" not in resources.get(kind, {}):
            problem(where, f"resources.{kind}.memory is missing")
    threads = env.get("GIST_THREADS")
    cpu = resources.get("requests", {}).get("cpu")
    if threads is not None and cpu is not None and str(threads) != str(cpu):
        problem(where, f"GIST_THREADS {threads} should equal the CPU request {cpu}")


def check_objects(docs: list[dict[str, Any]], where: str, manifests: Path) -> None:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    (deployment,) = by_kind.get("Deployment", [None])  # type: ignore[list-item]
    if deployment is None:
        problem(where, "no Deployment")
        return
    check_deployment(deployment, f"{where} {name(deployment)}")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    services = by_kind.get("Service", [])
    headless = [s for s in services if s["spec"].get("clusterIP") == "None"]
    cluster_ip = [s for s in services if s["spec"].get("clusterIP") != "None"]
    if len(headless) != 1 or len(cluster_ip) != 1:
        problem(where, "expected one headless Service and one ClusterIP Service")
    for s in services:
        if not matches(s["spec"]["selector"], pod_labels):
            problem(f"{where} {name(s)}", "its selector does not match the Deployment's pods")
        for port in s["spec"]["ports"]:
            if port["targetPort"] not in ("grpc", "metrics"):
                problem(f"{where} {name(s)}", f"targetPort {port['targetPort']} is not a named container port")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        if not matches(pdb["spec"]["selector"]["matchLabels"], pod_labels):
            problem(f"{where} {name(pdb)}", "its selector does not match the Deployment's pods")
    hpas = by_kind.get("HorizontalPodAutoscaler", [])
    if len(hpas) != 1:
        problem(where, "expected one HorizontalPodAutoscaler")
    for hpa in hpas:
        target = hpa["spec"]["scaleTargetRef"]
        if (target["kind"], target["name"]) != ("Deployment", deployment["metadata"]["name"]):
            problem(f"{where} {name(hpa)}", f"scales {target}, not the Deployment")
        kinds = [m["type"] for m in hpa["spec"]["metrics"]]
        if kinds != ["Pods", "Resource"]:
            problem(f"{where} {name(hpa)}", f"metrics should be the queue depth then CPU, not {kinds}")
        for m in hpa["spec"]["metrics"]:
            if m["type"] == "Pods":
                check_custom_metric(m["pods"]["metric"]["name"], f"{where} {name(hpa)}", manifests)
    monitors = by_kind.get("ServiceMonitor", [])
    for monitor in monitors:
        where_m = f"{where} {name(monitor)}"
        selected = [s for s in services if matches(monitor["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))]
        if len(selected) != 1:
            problem(where_m, f"selects {len(selected)} Services; exactly one avoids scraping twice")
            continue
        port_names = {p["name"] for p in selected[0]["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            if endpoint.get("port") not in port_names:
                problem(where_m, f"port {endpoint.get('port')} is not a port of {name(selected[0])}")
            if endpoint.get("path", "/metrics") != "/metrics":
                problem(where_m, "gist serves its metrics at /metrics")
    if not monitors:
        problem(where, "no ServiceMonitor")


def check_custom_metric(metric: str, where: str, manifests: Path) -> None:
    """The HPA's metric is one the adapter's rule exposes, and one gist exports."""
    values = yaml.safe_load((manifests / "prometheus-adapter-values.yaml").read_text())
    exposed = [r["name"]["as"] for r in values["rules"]["custom"]]
    if metric not in exposed:
        problem(where, f"metric {metric} is not exposed by prometheus-adapter-values.yaml ({exposed})")
    metrics_rs = (REPO / "src" / "metrics.rs").read_text()
    if f'"{metric}"' not in metrics_rs:
        problem(where, f"gist exports no metric named {metric} (src/metrics.rs)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubectl", default=shutil.which("kubectl") or "kubectl")
    parser.add_argument("--k8s", default=DEFAULT_VERSION, help="Kubernetes version of the schema")
    parser.add_argument("--manifests", type=Path, default=HERE, help="the deploy/kubernetes folder")
    args = parser.parse_args()
    if shutil.which(args.kubectl) is None:
        sys.exit(f"check.py: {args.kubectl} not found (kubectl renders the kustomizations)")
    total = 0
    for relative in KUSTOMIZATIONS:
        where = relative
        docs = render(args.kubectl, args.manifests / relative)
        total += len(docs)
        for version in sorted({args.k8s, OLDEST_VERSION}):
            validate(docs, version, where)
        check_objects(docs, where, args.manifests)
    for p in problems:
        print(f"check.py: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"check.py: {total} objects in {len(KUSTOMIZATIONS)} kustomizations valid "
          f"(Kubernetes {OLDEST_VERSION} and {args.k8s} schemas, strict)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
