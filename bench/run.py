#!/usr/bin/env python3
"""gist's benchmark suite: every comparison against its peer, measured side by side in one
run, then BENCHMARKS.md with tables and plots. Started by bench/run.sh (which builds gist's
harness and the peers' environment first); see bench/README.md.

    bench/run.sh                 the full suite (about 40 minutes on 2 cores), BENCHMARKS.md
    bench/run.sh --quick         every benchmark on tiny inputs (about 3 minutes), CI's smoke test
    bench/run.sh --only soak     one part again; the report takes the other parts from the last
                                 run's results folder

Parts: ner, onnx, generate, keypoints, server, soak, profile. Each writes its records to
<results>/<part>.json; the report is written from whatever parts that folder holds.
No speed is asserted anywhere: targets are reported as met or missed, with the margin.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "peers"))
import peerlib  # noqa: E402  (the articles both sides read)

PARTS = ["ner", "onnx", "generate", "keypoints", "server", "soak", "profile"]  # the report's order
RUN_ORDER = ["generate", "keypoints", "server", "profile", "onnx", "ner", "soak"]  # short first
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
RELEASE = os.path.join(TARGET if os.path.isabs(TARGET) else os.path.join(ROOT, TARGET), "release")
GIST = os.path.join(RELEASE, "gist")
# The ONNX-only build (no libtorch in the process), stripped, as the image ships it:
# bench/run.sh builds it first and keeps it here.
GIST_ONNX_ONLY = os.path.join(RELEASE, "gist-onnx-only")
EXAMPLES = os.path.join(RELEASE, "examples")
PY = sys.executable
PEERS = os.path.join(HERE, "peers")
MODELS = os.path.join(ROOT, "models")
GRPCURL = os.path.join(ROOT, ".tools", "bin", "grpcurl")

# Targets of issue 6, gist / peer (or an absolute bound), as the report checks them.
TARGETS = {
    "ner": 1.5,        # NER throughput at equal threads
    "generate": 1.3,   # generation
    "keypoints": 2.0,  # key points
    "overhead": 0.05,  # server overhead / model time, default NER model, one client
    "memory_mb": 1024,  # resident memory of gist serve with the default models
    # issue 13, the ONNX Runtime engine
    "onnx_vs_python_ort": 1.3,    # gist-ORT / Python-ORT at the same precision
    "onnx_ner_vs_transformers": 3.0,  # gist-ORT, default NER model / transformers pipeline
    "onnx_memory_mb": 300,        # peak RSS of `gist serve --engine onnx`, default models
    "onnx_size_mb": 100,          # binary + libonnxruntime
}


def settings(quick):
    """What each part measures; --quick shrinks every input and every duration."""
    if quick:
        return dict(
            ner_models=["default", "random-bert-base"], ner_words=[60], ner_conc=[1, 2],
            ner_seconds=1.0, ner_warmup=0.0, ner_calls=1,
            gen_shape="tiny", gen_beams=[1, 2], gen_length=4, gen_repeats=1, gen_bytes=60,
            kp_articles=3, kp_words=[120, 200],
            fake_conc=[1, 8, 64], fake_seconds=1.0, curve_conc=[1, 4], curve_seconds=1.0,
            warmup=0.5, soak_seconds=4.0, soak_every=2.0, calibrate_seconds=1.0,
            profile_seconds=1.0, profile_words=60,
            onnx_words=60, onnx_conc=[1], onnx_seconds=1.0, onnx_warmup=0.0, onnx_kp_articles=3,
            onnx_serve_seconds=1.0,
        )
    return dict(
        ner_models=["default", "random-bert-base"], ner_words=[200, 800, 3000],
        ner_conc=[1, 8], ner_seconds=10.0, ner_warmup=2.0, ner_calls=2,
        gen_shape="distilbart-cnn-6-6", gen_beams=[1, 4], gen_length=60, gen_repeats=7,
        gen_bytes=510,
        kp_articles=30, kp_words=[300, 600, 900],
        fake_conc=[1, 8, 64], fake_seconds=10.0, curve_conc=[1, 2, 4, 8, 16, 32],
        curve_seconds=10.0, warmup=2.0, soak_seconds=600.0, soak_every=30.0,
        calibrate_seconds=10.0, profile_seconds=15.0, profile_words=800,
        onnx_words=800, onnx_conc=[1, 8], onnx_seconds=10.0, onnx_warmup=2.0,
        onnx_kp_articles=30, onnx_serve_seconds=20.0,
    )


# --- running things ------------------------------------------------------------------

def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    """Run `cmd`; its stderr passes through; return stdout. A failure ends the suite."""
    shown = " ".join(os.path.relpath(c, ROOT) if os.path.isabs(c) and c.startswith(ROOT) else c
                     for c in map(str, cmd))
    log(f"$ {shown}")
    proc = subprocess.run([str(c) for c in cmd], cwd=ROOT, stdout=subprocess.PIPE, text=True, **kw)
    if proc.returncode != 0:
        raise SystemExit(f"bench: `{shown}` failed (exit {proc.returncode})")
    return proc.stdout


def last_json(out):
    lines = [l for l in out.splitlines() if l.startswith("{")]
    if not lines:
        raise SystemExit("bench: a harness printed no JSON result")
    return json.loads(lines[-1])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid, field):
    """A /proc/PID/status field in MB (VmRSS, VmHWM), or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Serve:
    """`gist serve` on a free port, ready (health SERVING) when entered, stopped (SIGTERM)
    when left; its memory is sampled every `sample_every` seconds meanwhile."""

    def __init__(self, *flags, sample_every=1.0, binary=None):
        self.binary = binary or GIST
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.flags = [str(f) for f in flags]
        self.sample_every = sample_every
        self.samples = []  # (seconds since ready, RSS MB)
        self.peak_rss_mb = None

    def __enter__(self):
        cmd = [self.binary, "serve", "--listen", self.addr, "--log-format", "json", *self.flags]
        log("$ gist serve " + " ".join(cmd[2:]))
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while True:
            if self.proc.poll() is not None:
                self.log.seek(0)
                sys.stderr.write(self.log.read().decode(errors="replace")[-4000:])
                raise SystemExit(f"bench: gist serve exited ({self.proc.returncode})")
            check = subprocess.run(
                [GRPCURL, "-plaintext", "-d", '{"service":""}', self.addr,
                 "grpc.health.v1.Health/Check"], capture_output=True, text=True)
            if '"SERVING"' in check.stdout:
                break
            if time.time() > deadline:
                self.proc.kill()
                raise SystemExit("bench: gist serve was not ready within 300 s")
            time.sleep(0.2)
        self.ready = time.time()
        self.rss_after_load_mb = proc_status(self.proc.pid, "VmRSS")
        self.stop = threading.Event()
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampler.start()
        return self

    def _sample(self):
        while not self.stop.is_set():
            rss = proc_status(self.proc.pid, "VmRSS")
            if rss is not None:
                self.samples.append((round(time.time() - self.ready, 1), round(rss, 1)))
            self.stop.wait(self.sample_every)

    def __exit__(self, *exc):
        self.stop.set()
        self.sampler.join()
        self.peak_rss_mb = proc_status(self.proc.pid, "VmHWM")
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def loadgen(addr, text, rpc="entities", concurrency=1, seconds=10.0, warmup=2.0, rate=0.0,
            report_every=0.0):
    out = run([os.path.join(EXAMPLES, "loadgen"), "--addr", addr, "--rpc", rpc,
               "--concurrency", concurrency, "--seconds", seconds, "--warmup", warmup,
               "--rate", rate, "--report-every", report_every, "--text", text])
    lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    return lines[-1], lines[:-1]


def write_article(work, words, name=None):
    path = os.path.join(work, name or f"article-{words}w.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(peerlib.article(words) + "\n")
    return path


# --- the parts -----------------------------------------------------------------------

def part_ner(s, work, threads):
    """gist's NER engine (examples/bench_ner.rs) against the token-classification pipeline
    (peers/ner_peer.py), same weights, articles, libtorch, threads; each setting in a fresh
    process on each side."""
    rows = []
    for model in s["ner_models"]:
        if model == "default":
            gist_models, peer_model = MODELS, os.path.join(MODELS, "conll03-minilm-ner")
        else:
            peer_model = os.path.join(work, "random-bert-base")
            run([PY, os.path.join(PEERS, "ner_peer.py"), "--model",
                 os.path.join(MODELS, "conll03-minilm-ner"), "--random-bert-base",
                 "--save-random", peer_model])
            gist_models = os.path.join(work, "ner-models")
            run([GIST, "models", "import", peer_model, "--as", "random-bert-base",
                 "--task", "ner", "--models", gist_models])
        for words in s["ner_words"]:
            text = write_article(work, words)
            # Short articles: a time window; long ones: a count of calls per caller (one
            # round of a 3,000-word article at 8 callers outlasts any short window).
            if words <= 200:
                measure = ["--seconds", s["ner_seconds"], "--warmup", s["ner_warmup"]]
            else:
                measure = ["--calls", s["ner_calls"]]
            for conc in s["ner_conc"]:
                g = last_json(run([os.path.join(EXAMPLES, "bench_ner"), "--models", gist_models,
                                   "--text", text, "--concurrency", conc, *measure,
                                   "--threads", threads]))
                p = last_json(run([PY, os.path.join(PEERS, "ner_peer.py"), "--model", peer_model,
                                   "--words", words, "--concurrency", conc, *measure,
                                   "--threads", threads]))["runs"][0]
                rows.append({"model": model, "words": words, "concurrency": conc,
                             "gist": g, "peer": p,
                             "ratio": ratio(g["docs_per_span_second"], p["docs_per_span_second"])})
        if model != "default":
            shutil.rmtree(peer_model, ignore_errors=True)
            shutil.rmtree(os.path.join(work, "ner-models"), ignore_errors=True)
    return {"rows": rows}


def onnx_models(work, precision, context=None):
    """A models folder whose models.toml serves the default encoder and NER model through
    ONNX Runtime at `precision` (the model folders themselves are the prepared ones), the
    NER model reading `context` tokens of neighbouring sentences when given."""
    folder = os.path.join(work, f"models-onnx-{precision}" + (f"-ctx{context}" if context is not None else ""))
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "models.toml"), "w") as f:
        for section, name in [("encoder", "all-MiniLM-L6-v2"), ("ner", "conll03-minilm-ner")]:
            f.write(f'[{section}]\nname = "{name}"\npath = "{os.path.join(MODELS, name)}"\n'
                    f'runtime = "onnx"\nprecision = "{precision}"\n')
            if section == "ner" and context is not None:
                f.write(f"context_tokens = {context}\n")
            f.write("\n")
    return folder


class Busy:
    """A second process spinning on the last core while the block runs (CPU contention)."""

    def __enter__(self):
        core = (os.cpu_count() or 1) - 1
        self.proc = subprocess.Popen([PY, "-c", "while True: pass"],
                                     preexec_fn=lambda: os.sched_setaffinity(0, {core}))
        log(f"busy process {self.proc.pid} on core {core}")
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def part_onnx(s, work, threads):
    """gist's ONNX Runtime engine against Python driving the same model.onnx files with
    onnxruntime and HF tokenizers (peers/ort_peer.py), at fp32 and int8, and against the
    transformers pipeline and gist's rust-bert engine on the same article; one setting under
    CPU contention; key points the same way; `gist serve --engine onnx` memory; sizes."""
    text = write_article(work, s["onnx_words"])
    ner_model = os.path.join(MODELS, "conll03-minilm-ner")
    enc_model = os.path.join(MODELS, "all-MiniLM-L6-v2")
    measure = ["--seconds", s["onnx_seconds"], "--warmup", s["onnx_warmup"]]

    def gist_ner(models, engine, conc):
        return last_json(run([os.path.join(EXAMPLES, "bench_ner"), "--models", models,
                              "--engine", engine, "--text", text, "--concurrency", conc,
                              *measure, "--threads", threads]))

    def ort_ner(precision, conc):
        return last_json(run([PY, os.path.join(PEERS, "ort_peer.py"), "ner", "--model", ner_model,
                              "--precision", precision, "--words", s["onnx_words"],
                              "--concurrency", conc, *measure, "--threads", threads]))

    def tf_ner(conc):
        return last_json(run([PY, os.path.join(PEERS, "ner_peer.py"), "--model", ner_model,
                              "--words", s["onnx_words"], "--concurrency", conc, *measure,
                              "--threads", threads]))["runs"][0]

    ner = []
    for conc in s["onnx_conc"]:
        row = {"concurrency": conc, "contention": False,
               "transformers": tf_ner(conc), "rust_bert": gist_ner(MODELS, "rust-bert", conc)}
        for precision in ("fp32", "int8"):
            row[f"gist_{precision}"] = gist_ner(onnx_models(work, precision), "onnx", conc)
            row[f"ort_{precision}"] = ort_ner(precision, conc)
        # The default NER model reads 64 tokens of context; what 32 buys (README).
        row["gist_int8_ctx32"] = gist_ner(onnx_models(work, "int8", 32), "onnx", conc)
        ner.append(row)
    with Busy():
        row = {"concurrency": 1, "contention": True,
               "transformers": tf_ner(1), "rust_bert": gist_ner(MODELS, "rust-bert", 1)}
        for precision in ("fp32", "int8"):
            row[f"gist_{precision}"] = gist_ner(onnx_models(work, precision), "onnx", 1)
            row[f"ort_{precision}"] = ort_ner(precision, 1)
        ner.append(row)

    articles = keypoint_articles(work, s["onnx_kp_articles"], s["kp_words"])
    common = ["--input", articles, "--text-field", "text", "--limit", s["onnx_kp_articles"],
              "--threads", threads]
    kp = {"transformers": last_json(run([PY, os.path.join(PEERS, "keypoints_peer.py"),
                                         "--model", enc_model, *common])),
          "rust_bert": last_json(run([os.path.join(EXAMPLES, "bench_keypoints"), "--models",
                                      MODELS, "--engine", "rust-bert", *common]))}
    for precision in ("fp32", "int8"):
        kp[f"gist_{precision}"] = last_json(run([
            os.path.join(EXAMPLES, "bench_keypoints"), "--models", onnx_models(work, precision),
            "--engine", "onnx", *common]))
        kp[f"ort_{precision}"] = last_json(run([
            PY, os.path.join(PEERS, "ort_peer.py"), "keypoints", "--model", enc_model,
            "--precision", precision, *common]))

    # Memory of the ONNX-only build, the one the image ships (the default build also maps
    # libtorch into the process).
    serve = {}
    khan_li = os.path.join(ROOT, "tests", "data", "khan-li-call.txt")
    for precision in ("fp32", "int8"):
        with Serve("--engine", "onnx", "--models", onnx_models(work, precision),
                   "--threads", threads, binary=GIST_ONNX_ONLY) as srv:
            r, _ = loadgen(srv.addr, khan_li, "mixed", 4, s["onnx_serve_seconds"], s["warmup"])
            rss_after_load = srv.rss_after_load_mb
        serve[precision] = {"peak_rss_mb": srv.peak_rss_mb, "rss_after_load_mb": rss_after_load,
                            "ok_per_second": r.get("ok_per_second")}
    lib = os.path.realpath(os.path.join(ROOT, "onnxruntime", "lib", "libonnxruntime.so"))
    sizes = {"gist_binary_mb": round(os.path.getsize(GIST_ONNX_ONLY) / 2**20, 1),
             "libonnxruntime_mb": round(os.path.getsize(lib) / 2**20, 1),
             "libonnxruntime": os.path.basename(lib)}
    return {"words": s["onnx_words"], "ner": ner, "keypoints": kp, "serve": serve,
            "sizes": sizes}


def part_generate(s, work, threads):
    """rust-bert's BART generator as gist loads it (examples/bench_generate.rs) against
    transformers' generate (peers/generate_peer.py): the same random weights, the same input
    ids, min length = max length so both decode the same number of steps."""
    model_dir = os.path.join(work, "random-bart")
    shape = ["--shape", s["gen_shape"]]
    run([PY, os.path.join(PEERS, "generate_peer.py"), *shape, "--save-random", model_dir])
    gist_models = os.path.join(work, "bart-models")
    run([GIST, "models", "import", model_dir, "--as", "random-bart", "--task", "summarize",
         "--models", gist_models])
    # The input: whole words of the article up to gen_bytes UTF-8 bytes; with the byte-level
    # vocabulary every byte is one token, so the model reads gen_bytes + 2 tokens (<s>, </s>).
    words, text = peerlib.article(2000).split(" "), ""
    for w in words:
        nxt = (text + " " + w) if text else w
        if len(nxt.encode()) > s["gen_bytes"]:
            break
        text = nxt
    path = os.path.join(work, "generate-input.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    common = ["--beams", ",".join(map(str, s["gen_beams"])), "--length", s["gen_length"],
              "--repeats", s["gen_repeats"], "--threads", threads, "--text", path]
    g = last_json(run([os.path.join(EXAMPLES, "bench_generate"), "--models", gist_models,
                       *common]))
    p = last_json(run([PY, os.path.join(PEERS, "generate_peer.py"), *shape, "--model", model_dir,
                       *common]))
    shutil.rmtree(model_dir, ignore_errors=True)
    shutil.rmtree(gist_models, ignore_errors=True)
    rows = []
    for gr, pr in zip(g["runs"], p["runs"]):
        rows.append({"beams": gr["beams"], "gist": gr, "peer": pr,
                     "equal_work": gr["output_tokens"] == pr["output_tokens"],
                     "ratio": ratio(pr["seconds_per_generate"], gr["seconds_per_generate"])})
    return {"shape": s["gen_shape"], "gist": g, "peer": p, "rows": rows,
            # gist counts </s> but not <s> in input_tokens
            "equal_input": g["input_tokens"] + 1 == p["input_tokens"]}


def keypoint_articles(work, count, lengths):
    """`count` different articles: the Khan-Li article's paragraphs rotated by i, repeated
    up to one of `lengths` words."""
    with open(peerlib.KHAN_LI, encoding="utf-8") as f:
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", f.read()) if p.strip()]
    path = os.path.join(work, "keypoint-articles.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for i in range(count + 1):  # + the warm-up article
            order = paragraphs[i % len(paragraphs):] + paragraphs[:i % len(paragraphs)]
            out, n, target = [], 0, lengths[i % len(lengths)]
            while n < target:
                for p in order:
                    out.append(p)
                    n += len(p.split())
                    if n >= target:
                        break
            f.write(json.dumps({"id": f"article-{i}", "text": "\n\n".join(out)},
                               ensure_ascii=False) + "\n")
    return path


def part_keypoints(s, work, threads):
    """gist's extractive Summarize (examples/bench_keypoints.rs) against the same pipeline
    in Python (peers/keypoints_peer.py): sentencex, MiniLM mean pooling, the same ranking."""
    articles = keypoint_articles(work, s["kp_articles"], s["kp_words"])
    common = ["--input", articles, "--text-field", "text", "--limit", s["kp_articles"],
              "--threads", threads]
    gist_out, peer_out = os.path.join(work, "kp-gist.jsonl"), os.path.join(work, "kp-peer.jsonl")
    g = last_json(run([os.path.join(EXAMPLES, "bench_keypoints"), "--models", MODELS, *common,
                       "--output", gist_out]))
    p = last_json(run([PY, os.path.join(PEERS, "keypoints_peer.py"), "--model",
                       os.path.join(MODELS, "all-MiniLM-L6-v2"), *common, "--output", peer_out]))
    same, total = 0, 0
    for a, b in zip(open(gist_out, encoding="utf-8"), open(peer_out, encoding="utf-8")):
        ta = [k["text"].strip() for k in json.loads(a)["key_points"]]
        tb = [k["text"].strip() for k in json.loads(b)["key_points"]]
        same += ta == tb
        total += 1
    return {"gist": g, "peer": p, "same_key_points": same, "compared": total,
            "ratio": ratio(g["articles_per_second"], p["articles_per_second"])}


def part_server(s, work, threads):
    """`gist serve` under examples/loadgen.rs: the fake engine (pure overhead) at 1, 8 and 64
    streams; the default models' latency against concurrency with and without batching."""
    text = os.path.join(ROOT, "tests", "data", "khan-li-call.txt")
    fake = []
    with Serve("--engine", "fake", "--models", MODELS, "--queue-capacity", 1024) as srv:
        for conc in s["fake_conc"]:
            r, _ = loadgen(srv.addr, text, "entities", conc, s["fake_seconds"], s["warmup"])
            fake.append(r)
    # The same at one stream without the batching window (the model thread otherwise waits
    # up to --batch-delay-ms 5 after a batch's first request for more to join it).
    with Serve("--engine", "fake", "--models", MODELS, "--batch-delay-ms", 0) as srv:
        r, _ = loadgen(srv.addr, text, "entities", 1, s["fake_seconds"], s["warmup"])
        r["batch_delay_ms"] = 0
        fake.append(r)
    curves = {}
    for name, flags in [("batching", ["--max-batch", 16]), ("no batching", ["--max-batch", 1])]:
        rows = []
        with Serve("--models", MODELS, "--threads", threads, "--queue-capacity", 256,
                   *flags) as srv:
            for conc in s["curve_conc"]:
                r, _ = loadgen(srv.addr, text, "entities", conc, s["curve_seconds"], s["warmup"])
                rows.append(r)
        curves[name] = rows
    one = curves["batching"][0]
    return {"fake": fake, "curves": curves,
            # the server's time outside the model, per request, at one client
            "overhead": {
                "inference_ms": one["inference_ms_mean"],
                "outside_ms": one["outside_inference_ms_mean"],
                "fake_mean_ms": fake[0]["mean_ms"],
                "fake_no_delay_mean_ms": fake[-1]["mean_ms"],
                "share": ratio(one["outside_inference_ms_mean"], one["inference_ms_mean"]),
                "fake_share": ratio(fake[0]["mean_ms"], one["inference_ms_mean"]),
            }}


def part_soak(s, work, threads):
    """`gist serve` with the default models at a steady rate of mixed requests (entities,
    key points, both) for soak_seconds: its memory over time, and every status code."""
    text = os.path.join(ROOT, "tests", "data", "khan-li-call.txt")
    with Serve("--models", MODELS, "--threads", threads, "--queue-capacity", 64,
               sample_every=max(1.0, s["soak_every"] / 6)) as srv:
        # The rate: 60% of what a closed loop of 8 callers gets through, measured first.
        cal, _ = loadgen(srv.addr, text, "mixed", 8, s["calibrate_seconds"], s["warmup"])
        rate = round(max(0.5, 0.6 * cal["ok_per_second"]), 2)
        started = len(srv.samples)
        final, intervals = loadgen(srv.addr, text, "mixed", 4, s["soak_seconds"], s["warmup"],
                                   rate=rate, report_every=s["soak_every"])
        rss_after_load = srv.rss_after_load_mb
    memory = srv.samples[started:]
    t0 = memory[0][0] if memory else 0.0
    memory = [(round(t - t0, 1), m) for t, m in memory]
    quarter = max(1, len(memory) // 4)
    first, last = memory[:quarter], memory[-quarter:]
    mean = lambda xs: sum(m for _, m in xs) / len(xs) if xs else 0.0
    return {"rate": rate, "calibration": cal, "final": final, "intervals": intervals,
            "memory": memory, "rss_after_load_mb": rss_after_load,
            "peak_rss_mb": srv.peak_rss_mb,
            "rss_first_quarter_mb": round(mean(first), 1),
            "rss_last_quarter_mb": round(mean(last), 1)}


def perf_top(data, sort, limit):
    """perf report rows (share %, name) sorted by `sort` (dso or sym)."""
    out = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                          "--sort", sort, "--percent-limit", "0.5"],
                         capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(.*\S)", line)
        if m:
            name = m.group(2)
            if sort == "sym":
                name = re.sub(r"^\[[.kK]\]\s+", "", name)
            rows.append((float(m.group(1)), name))
    return rows[:limit]


def part_profile(s, work, threads):
    """Where each side's NER time goes: `perf record` (sampling, user and kernel) of a run
    of the default model on one article, one caller, on each side; shares by library and
    the top symbols."""
    if not shutil.which("perf"):
        return {"skipped": "perf is not installed (apt-get install -y linux-perf)"}
    words = s["profile_words"]
    text = write_article(work, words)
    sides = {}
    # Sampling starts after each side's start-up (loading; for Python also the imports),
    # measured by a first run of each side; the calls go on for profile_seconds after that.
    for side, cmd in [
        ("gist", [os.path.join(EXAMPLES, "bench_ner"), "--models", MODELS, "--text", text,
                  "--concurrency", 1, "--threads", threads]),
        ("transformers", [PY, os.path.join(PEERS, "ner_peer.py"), "--model",
                          os.path.join(MODELS, "conll03-minilm-ner"), "--words", words,
                          "--concurrency", 1, "--threads", threads]),
    ]:
        t = time.time()
        last_json(run([*cmd, "--seconds", 0.5, "--warmup", 0]))
        startup = time.time() - t
        data = os.path.join(work, f"perf-{side}.data")
        probe = subprocess.run(["perf", "record", "-e", "cpu-clock", "-F", "499", "-o", data,
                                "-D", str(int(startup * 1000)), "--", *map(str, cmd),
                                "--warmup", f"{startup:.1f}", "--seconds", str(s["profile_seconds"])],
                               cwd=ROOT, capture_output=True, text=True)
        if probe.returncode != 0:
            return {"skipped": "perf record failed: " + probe.stderr.strip()[-300:]}
        sides[side] = {"dso": perf_top(data, "dso", 8), "sym": perf_top(data, "sym", 12),
                       "startup_seconds": round(startup, 1), "result": last_json(probe.stdout)}
    return {"words": words, "seconds": s["profile_seconds"], "sides": sides}


def ratio(a, b):
    return round(a / b, 3) if b else None


# --- the report ----------------------------------------------------------------------

def machine():
    def first(cmd, pattern=None):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout
        except OSError:
            return "?"
        if pattern:
            m = re.search(pattern, out, re.M)
            return m.group(1).strip() if m else "?"
        return out.strip() or "?"

    mem = first(["cat", "/proc/meminfo"], r"MemTotal:\s+(\d+)")
    lock = open(os.path.join(ROOT, "Cargo.lock")).read()
    crate = lambda n: (re.search(rf'name = "{n}"\nversion = "([^"]+)"', lock) or [None, "?"])[1]
    rev = first(["git", "rev-parse", "--short", "HEAD"])
    dirty = first(["git", "status", "--porcelain", "--untracked-files=no"])
    return {
        "cpu": first(["lscpu"], r"Model name:\s+(.*)"),
        "cores": os.cpu_count(),
        "memory_gib": round(int(mem) / 1024 / 1024, 1) if mem.isdigit() else "?",
        "kernel": platform.release(),
        "os": first(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "rustc": first(["rustc", "--version"]),
        "gist": rev + (" (with uncommitted changes)" if dirty not in ("", "?") else ""),
        "rust-bert": crate("rust-bert"), "tch": crate("tch"), "tonic": crate("tonic"),
        "python": platform.python_version(),
    }


def write_report(results_dir, out_path, plots_dir, meta):
    import report  # bench/report.py: tables and plots

    parts = {}
    for part in PARTS:
        path = os.path.join(results_dir, f"{part}.json")
        if os.path.exists(path):
            with open(path) as f:
                parts[part] = json.load(f)
    text = report.render(parts, meta, plots_dir, os.path.dirname(os.path.abspath(out_path)),
                         TARGETS)
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(text)
    log(f"wrote {os.path.relpath(out_path, ROOT)} and the plots in "
        f"{os.path.relpath(plots_dir, ROOT)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="every benchmark on tiny inputs, in a few minutes (CI); writes "
                         "bench/results/quick/BENCHMARKS.md, never the committed one")
    ap.add_argument("--only", help=f"comma-separated parts to run ({', '.join(PARTS)}); the "
                    "report also takes the other parts' last results")
    ap.add_argument("--report-only", action="store_true",
                    help="run nothing; write the report from the results folder")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="libtorch threads on both sides (default: all cores)")
    args = ap.parse_args()
    s = settings(args.quick)
    if args.quick:
        results_dir = os.path.join(HERE, "results", "quick")
        out_path = os.path.join(results_dir, "BENCHMARKS.md")
        plots_dir = os.path.join(results_dir, "plots")
    else:
        results_dir = os.path.join(HERE, "results", "full")
        out_path = os.path.join(ROOT, "BENCHMARKS.md")
        plots_dir = os.path.join(ROOT, "docs", "benchmarks")
    os.makedirs(results_dir, exist_ok=True)
    os.makedirs(plots_dir, exist_ok=True)
    parts = RUN_ORDER if not args.only else [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"bench: unknown part(s) {', '.join(unknown)} (parts: {', '.join(PARTS)})")
    command = "bench/run.sh" + "".join(f" {a}" for a in sys.argv[1:])
    meta_path = os.path.join(results_dir, "meta.json")
    if not args.report_only:
        started = time.time()
        where = machine()  # before the parts: the tree that was built and measured
        work = tempfile.mkdtemp(prefix="gist-bench-")
        try:
            for part in parts:
                t = time.time()
                log(f"--- {part}")
                result = globals()[f"part_{part}"](s, work, args.threads)
                result["part_seconds"] = round(time.time() - t, 1)
                with open(os.path.join(results_dir, f"{part}.json"), "w") as f:
                    json.dump(result, f, indent=1)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        meta = {"command": command, "quick": args.quick, "threads": args.threads,
                "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                "minutes": round((time.time() - started) / 60, 1), "parts": parts,
                "machine": where, "settings": s}
        if args.only and os.path.exists(meta_path):  # a partial rerun keeps the first run's
            with open(meta_path) as f:
                old = json.load(f)
            old.setdefault("reruns", []).append(meta)
            meta = old
        with open(meta_path, "w") as f:
            json.dump(meta, f, indent=1)
    with open(meta_path) as f:
        meta = json.load(f)
    write_report(results_dir, out_path, plots_dir, meta)


if __name__ == "__main__":
    main()
