#!/usr/bin/env python3
"""Measure a gist server's resident memory, to size the Deployment's memory request and
limit: idle after loading, then the peak while `--in-flight` Analyze calls of the given
articles run (every article `--rounds` times), sampling gist's own
`process_resident_memory_bytes` from GET /metrics every 100 ms.

Usage (with a server started with --metrics-listen):
    PYTHONPATH=clients/python .tools/deploy-venv/bin/python deploy/kubernetes/measure_rss.py \\
        --target 127.0.0.1:50051 --metrics 127.0.0.1:9090 ARTICLES.jsonl

ARTICLES.jsonl: one {"id", "text"} object per line (`--text-field` for another name).
Prints one JSON line: idle and peak RSS in MiB, calls, failures.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.request

from gist_client import GistPool


def rss(metrics: str) -> float:
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5) as page:
        for line in page.read().decode().splitlines():
            if line.startswith("process_resident_memory_bytes "):
                return float(line.split()[1])
    raise SystemExit("no process_resident_memory_bytes in /metrics (Linux only)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("articles")
    p.add_argument("--target", default="127.0.0.1:50051")
    p.add_argument("--metrics", default="127.0.0.1:9090")
    p.add_argument("--text-field", default="text")
    p.add_argument("--in-flight", type=int, default=16)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--limit", type=int, default=0, help="first N articles only")
    args = p.parse_args()
    with open(args.articles) as f:
        texts = [json.loads(line)[args.text_field] for line in f if line.strip()]
    if args.limit:
        texts = texts[: args.limit]
    idle = rss(args.metrics)
    peak = [idle]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            peak.append(rss(args.metrics))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    items = [(f"{r}-{i}", t) for r in range(args.rounds) for i, t in enumerate(texts)]
    started = time.monotonic()
    with GistPool(args.target, timeout=600) as pool:
        outcomes = list(pool.analyze_many(items, in_flight=args.in_flight))
    stop.set()
    sampler.join()
    peak.append(rss(args.metrics))
    mib = 1 << 20
    print(json.dumps({
        "idle_mib": round(idle / mib),
        "peak_mib": round(max(peak) / mib),
        "after_mib": round(peak[-1] / mib),
        "calls": len(outcomes),
        "failed": sum(1 for o in outcomes if not o.ok),
        "seconds": round(time.monotonic() - started, 1),
        "in_flight": args.in_flight,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
