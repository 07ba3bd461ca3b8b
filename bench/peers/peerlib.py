"""What the Python peers share: thread settings, deterministic article text, latency
percentiles computed the way gist's loadgen computes them, memory, one JSON line out.

Only the standard library at import time; torch is imported by `set_threads`.
"""
import json
import os
import re
import resource
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KHAN_LI = os.path.join(ROOT, "tests", "data", "khan-li-call.txt")


def set_threads(n):
    """torch intra-op and inter-op threads; 0 keeps torch's defaults (one per core).

    Must run before torch does any parallel work (set_num_interop_threads fails after)."""
    import torch

    if n > 0:
        torch.set_num_threads(n)
        torch.set_num_interop_threads(n)
    return {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}


def article(words, source=KHAN_LI):
    """The first `words` white-space-separated words of `source` repeated end to end, with
    its paragraph breaks kept: the same text for every run and every tool (write it out with
    `write_article` to send the identical text to gist)."""
    with open(source, encoding="utf-8") as f:
        pieces = re.findall(r"\S+\s*", f.read())
    if not pieces:
        raise SystemExit(f"{source}: no words")
    out = []
    while len(out) < words:
        out.extend(pieces[: words - len(out)])
        if out and not out[-1].endswith("\n\n"):
            out[-1] = out[-1].rstrip() + "\n\n"  # each repetition is its own paragraph
    return "".join(out).strip()


def percentile(sorted_ms, p):
    """gist's loadgen: element floor(n * p) of the sorted latencies (0 when empty)."""
    if not sorted_ms:
        return 0.0
    return sorted_ms[min(int(len(sorted_ms) * p), len(sorted_ms) - 1)]


def peak_rss_mb():
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def versions():
    import tokenizers
    import torch
    import transformers

    return {"python": sys.version.split()[0], "torch": torch.__version__,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__}


def emit(result):
    print(json.dumps(result, separators=(",", ":")), flush=True)


def int_list(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"expected comma-separated integers, got {text!r}")
    if not values or any(v <= 0 for v in values):
        raise SystemExit(f"expected positive integers, got {text!r}")
    return values


def run_children(script, base_args, grid):
    """Run `script` once per setting in `grid` (a list of extra-argument lists), each in a
    fresh process so that its peak RSS is its own, and return the parsed JSON lines."""
    results = []
    for extra in grid:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, script, *base_args, *extra],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            raise SystemExit(f"{os.path.basename(script)} {' '.join(extra)} failed "
                             f"(exit {proc.returncode})")
        lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
        if not lines:
            raise SystemExit(f"{os.path.basename(script)} {' '.join(extra)} printed no result")
        result = json.loads(lines[-1])
        if "runs" in result:  # a child prints the same shape as a one-setting run
            result = result["runs"][0]
        result["process_seconds"] = round(time.perf_counter() - started, 2)
        results.append(result)
    return results
