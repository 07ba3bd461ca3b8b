"""BENCHMARKS.md from bench/run.py's results: tables, plots (matplotlib, SVG), and each
target of issue 6 checked as met or missed, with the margin. Pure formatting: it measures
nothing and asserts nothing."""
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "gist", "font.size": 9,
                     "axes.spines.top": False, "axes.spines.right": False})
GIST, PEER = "#2b6cb0", "#c05621"
HERE = os.path.dirname(os.path.abspath(__file__))


def fmt(x, places=2):
    if x is None:
        return "–"
    return f"{x:,.{places}f}"


def times(x):
    return "–" if x is None else f"{x:.2f}×"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def geomean(xs):
    xs = [x for x in xs if x]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def verdict(value, target, higher_is_better=True):
    if value is None:
        return "not measured"
    met = value >= target if higher_is_better else value <= target
    if met:
        return "**met**"
    if higher_is_better:
        return f"missed by {100 * (1 - value / target):.0f}%"
    return f"missed: {value / target:.1f}× the bound"


class Report:
    def __init__(self, plots_dir, md_dir):
        self.plots_dir, self.md_dir = plots_dir, md_dir

    def save(self, fig, name):
        path = os.path.join(self.plots_dir, name)
        fig.tight_layout()
        fig.savefig(path, format="svg", metadata={"Date": None})
        plt.close(fig)
        return f"![{name}]({os.path.relpath(path, self.md_dir)})"


def ner_label(model):
    return {"default": "conll03-minilm-ner (default)",
            "random-bert-base": "random BERT-base"}.get(model, model)


def section_ner(r, ner):
    rows = ner["rows"]
    out = ["## 1. Named entities: gist vs the `transformers` pipeline", "",
           "gist's engine behind its model thread (`examples/bench_ner.rs`, no network) against "
           "`pipeline(\"token-classification\", aggregation_strategy=\"simple\")` with a stride "
           "so long articles are covered (`bench/peers/ner_peer.py`), on the same weights: the "
           "default model, and a BERT-base-shaped model with random weights that the peer writes "
           "and gist imports (`gist models import`). N callers share one model on each side "
           "(Python: threads sharing one pipeline). Articles of up to 200 words are measured "
           "over a time window after a warm-up; longer ones by a count of calls per caller. "
           "Docs/s over the measured span.", ""]
    body = []
    for x in rows:
        g, p = x["gist"], x["peer"]
        body.append([ner_label(x["model"]), x["words"], x["concurrency"],
                     fmt(g["docs_per_span_second"]), fmt(p["docs_per_span_second"]),
                     f"**{times(x['ratio'])}**", f"{g['docs']} / {p['docs']}",
                     f"{fmt(g['p50_ms'], 0)} / {fmt(p['p50_ms'], 0)}",
                     f"{fmt(g['p95_ms'], 0)} / {fmt(p['p95_ms'], 0)}",
                     f"{fmt(g['peak_rss_mb'], 0)} / {fmt(p['peak_rss_mb'], 0)}"])
    out.append(table(["model", "words", "callers", "gist docs/s", "transformers docs/s",
                      "gist / transformers", "calls measured gist / tf", "p50 ms gist / tf",
                      "p95 ms gist / tf", "peak RSS MB gist / tf"], body))
    models = list(dict.fromkeys(x["model"] for x in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.2), squeeze=False)
    for ax, model in zip(axes[0], models):
        mine = [x for x in rows if x["model"] == model]
        xs = range(len(mine))
        ax.bar([i - 0.2 for i in xs], [x["gist"]["docs_per_span_second"] for x in mine], 0.4,
               label="gist", color=GIST)
        ax.bar([i + 0.2 for i in xs], [x["peer"]["docs_per_span_second"] for x in mine], 0.4,
               label="transformers", color=PEER)
        ax.set_xticks(list(xs), [f"{x['words']}w×{x['concurrency']}" for x in mine], fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("docs/s (log)")
        ax.set_title(ner_label(model))
        for i, x in enumerate(mine):
            ax.annotate(times(x["ratio"]), (i, max(x["gist"]["docs_per_span_second"],
                                                   x["peer"]["docs_per_span_second"])),
                        ha="center", va="bottom", fontsize=7)
        ax.legend(fontsize=7)
    out += ["", r.save(fig, "ner.svg")]
    return "\n".join(out)


def section_onnx(r, onnx):
    out = ["## 1b. ONNX Runtime: gist's ONNX engine vs Python ORT vs `transformers`", "",
           "The default models exported to ONNX by `scripts/onnx/export.py` (fp32, and int8 by "
           "ONNX Runtime's dynamic quantization with the sensitive MatMuls left in fp32). "
           "**gist-ORT**: gist's ONNX engine behind its model thread (`examples/bench_ner.rs "
           "--engine onnx`, `examples/bench_keypoints.rs --engine onnx`); **Python-ORT**: "
           "`onnxruntime.InferenceSession` on the same model.onnx with HF `tokenizers`, 512-token "
           "windows with a stride, batches of 8, written the way a user would "
           "(`bench/peers/ort_peer.py`); **transformers**: the token-classification pipeline "
           "with a stride (`ner_peer.py`) and the key-point pipeline in torch "
           "(`keypoints_peer.py`); **rust-bert**: gist's libtorch engine. Same intra-op "
           f"threads everywhere; {onnx['words']}-word article; docs/s over the measured span. "
           "The contention row runs with a second process spinning on the last core. The "
           "default NER model reads each sentence with up to 64 tokens of its neighbours "
           "(document context, as it was trained), so gist computes about 1.3× the article's "
           "tokens; the last column reads 32 (`context_tokens`, README).", ""]
    body = []

    def ctx32(x):
        if "gist_int8_ctx32" not in x:
            return "–"
        v = x["gist_int8_ctx32"]["docs_per_span_second"]
        return f"{fmt(v)} ({times(ratio_(v, x['transformers']['docs_per_span_second']))})"

    for x in onnx["ner"]:
        d = lambda k: x[k]["docs_per_span_second"]
        body.append([("**contended** " if x["contention"] else "") + str(x["concurrency"]),
                     fmt(d("gist_fp32")), fmt(d("ort_fp32")), fmt(d("gist_int8")),
                     fmt(d("ort_int8")), fmt(d("rust_bert")), fmt(d("transformers")),
                     f"**{times(ratio_(d('gist_fp32'), d('ort_fp32')))}**",
                     f"**{times(ratio_(d('gist_int8'), d('ort_int8')))}**",
                     times(ratio_(d("gist_int8"), d("transformers"))),
                     times(ratio_(d("gist_fp32"), d("rust_bert"))),
                     ctx32(x)])
    out.append(table(["callers", "gist-ORT fp32", "Python-ORT fp32", "gist-ORT int8",
                      "Python-ORT int8", "gist rust-bert", "transformers",
                      "gist / Py-ORT fp32", "gist / Py-ORT int8", "gist int8 / transformers",
                      "gist ORT fp32 / rust-bert",
                      "gist int8 with `context_tokens = 32` (docs/s, / transformers)"], body))
    kp = onnx["keypoints"]
    a = lambda k: kp[k]["articles_per_second"]
    out += ["", "Key points (articles/s, one after another):", "",
            table(["gist-ORT fp32", "Python-ORT fp32", "gist-ORT int8", "Python-ORT int8",
                   "gist rust-bert", "transformers", "gist / Py-ORT fp32", "gist / Py-ORT int8"],
                  [[fmt(a("gist_fp32")), fmt(a("ort_fp32")), fmt(a("gist_int8")),
                    fmt(a("ort_int8")), fmt(a("rust_bert")), fmt(a("transformers")),
                    f"**{times(ratio_(a('gist_fp32'), a('ort_fp32')))}**",
                    f"**{times(ratio_(a('gist_int8'), a('ort_int8')))}**"]])]
    sv, sz = onnx["serve"], onnx["sizes"]
    out += ["", f"`gist serve --engine onnx` (the ONNX-only build, as the image ships it) with "
            f"the default models, 4 mixed clients: peak RSS "
            f"{fmt(sv['fp32']['peak_rss_mb'], 0)} MB at fp32, {fmt(sv['int8']['peak_rss_mb'], 0)} "
            f"MB at int8. Sizes: the ONNX-only `gist` binary, stripped, {fmt(sz['gist_binary_mb'], 1)} "
            f"MB, `{sz['libonnxruntime']}` {fmt(sz['libonnxruntime_mb'], 1)} MB."]
    return "\n".join(out)


def ratio_(a, b):
    return round(a / b, 3) if a and b else None


def section_generate(r, gen):
    g, p = gen["gist"], gen["peer"]
    out = ["## 2. Abstractive generation: rust-bert vs `transformers` `generate`", "",
           f"BART at the {gen['shape']} shape with random weights (the peer builds and saves "
           "them with a byte-level vocabulary; gist imports the same files), the same input "
           f"ids on both sides ({p['input_tokens']} tokens"
           f"{'' if gen['equal_input'] else ', **input lengths differ**'}), min length = max "
           f"length = {p['length']}, no n-gram blocking, so both sides decode exactly the same "
           "number of steps. gist: its engine's `generate` (rust-bert's BART generator, "
           "`examples/bench_generate.rs`); the peer: `BartForConditionalGeneration.generate` "
           "(`bench/peers/generate_peer.py`). Median of the measured calls, after one warm-up.",
           ""]
    body = []
    for x in gen["rows"]:
        gr, pr = x["gist"], x["peer"]
        body.append([x["beams"], f"{gr['output_tokens']} / {pr['output_tokens']}"
                     + ("" if x["equal_work"] else " (**differ**)"),
                     fmt(gr["seconds_per_generate"], 3), fmt(pr["seconds_per_generate"], 3),
                     f"**{times(x['ratio'])}**", fmt(gr["tokens_per_second"], 1),
                     fmt(pr["tokens_per_second"], 1), gr["repeats"]])
    out.append(table(["beams", "output tokens gist / tf", "gist s/summary", "transformers s/summary",
                      "speed gist / tf", "gist tokens/s", "tf tokens/s", "calls measured"], body))
    out += ["", f"Peak RSS: gist {fmt(g['peak_rss_mb'], 0)} MB, transformers "
            f"{fmt(p['peak_rss_mb'], 0)} MB ({p.get('parameters', 0) / 1e6:.0f} M parameters)."]
    return "\n".join(out)


def section_keypoints(r, kp):
    g, p = kp["gist"], kp["peer"]
    out = ["## 3. Key points: gist vs the same pipeline in Python", "",
           "Extractive Summarize of each article, one after another (`examples/bench_keypoints.rs`, "
           "behind gist's model thread), against `bench/peers/keypoints_peer.py`: sentencex (the "
           "Python binding of the crate gist uses) with gist's dateline and boilerplate rules, "
           "all-MiniLM-L6-v2 with mean pooling in plain `transformers`, and a port of gist's "
           "ranking. The articles are the Khan–Li article's paragraphs rotated and repeated to "
           "different lengths.", "",
           table(["articles", "gist articles/s", "Python articles/s", "gist / Python",
                  "same key points", "peak RSS MB gist / Python"],
                 [[g["articles"], fmt(g["articles_per_second"]), fmt(p["articles_per_second"]),
                   f"**{times(kp['ratio'])}**", f"{kp['same_key_points']} of {kp['compared']}",
                   f"{fmt(g['peak_rss_mb'], 0)} / {fmt(p['peak_rss_mb'], 0)}"]]),
           "", "Python's time by stage: " + ", ".join(
               f"{k} {v:.2f} s" for k, v in p.get("stage_seconds", {}).items())
           + f" (of {p['seconds']:.2f} s)."]
    return "\n".join(out)


def section_server(r, srv):
    fake, curves, ov = srv["fake"], srv["curves"], srv["overhead"]
    out = ["## 4. The server itself", "",
           "`examples/loadgen.rs`, a gRPC load generator (each caller on its own HTTP/2 "
           "connection, closed loop), against `gist serve` on this machine. It also reads the "
           "server's `x-inference-time-ms` header (whole milliseconds, rounded down) so the "
           "time outside the model shows per request.", "",
           "### Pure overhead: the fake engine", "",
           "`gist serve --engine fake`: every request goes through gRPC, validation, the queue, "
           "the model thread and back, but the model answers at once. ExtractEntities with the "
           "Khan–Li article.", "",
           table(["streams", "batching window", "requests/s", "p50 ms", "p99 ms", "codes"],
                 [[x["concurrency"], f"{x.get('batch_delay_ms', 5)} ms",
                   fmt(x["ok_per_second"], 0), fmt(x["p50_ms"], 3),
                   fmt(x["p99_ms"], 3), codes(x["codes"])] for x in fake]),
           "", "The batching window (`--batch-delay-ms`, default 5) is the longest the model "
           "thread waits after a batch's first request for others to join it; at one stream "
           "nobody joins, so it is most of the fake engine's latency there."]
    fake = [x for x in fake if "batch_delay_ms" not in x]
    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.plot([x["concurrency"] for x in fake], [x["ok_per_second"] for x in fake], "o-",
            color=GIST, label="requests/s")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("requests/s", color=GIST)
    ax2 = ax.twinx()
    ax2.plot([x["concurrency"] for x in fake], [x["p99_ms"] for x in fake], "s--", color=PEER)
    ax2.set_ylabel("p99 ms", color=PEER)
    ax.set_title("gist serve, fake engine")
    out += ["", r.save(fig, "server-overhead.svg"), "",
            "### Overhead against model time, default NER model, one client", "",
            table(["measure", "ms per request", "share of model time", "target"],
                  [["model time (server's x-inference-time-ms, mean)", fmt(ov["inference_ms"], 1),
                    "", ""],
                   ["client latency − model time, real model", fmt(ov["outside_ms"], 2),
                    f"**{fmt(100 * ov['share'], 1)}%**" if ov["share"] is not None else "–",
                    "< 5%"],
                   ["whole request with the fake engine (pure overhead)",
                    fmt(ov["fake_mean_ms"], 3),
                    f"{fmt(100 * ov['fake_share'], 2)}%" if ov["fake_share"] is not None else "–",
                    "< 5%"],
                   ["the same without the batching window (`--batch-delay-ms 0`)",
                    fmt(ov.get("fake_no_delay_mean_ms"), 3),
                    f"{fmt(100 * ov['fake_no_delay_mean_ms'] / ov['inference_ms'], 2)}%"
                    if ov.get("fake_no_delay_mean_ms") and ov["inference_ms"] else "–", ""]]),
            "", "The first row's share includes the header's rounding down (about 0.5 ms per "
            "request on average), so it overstates the overhead slightly; the fake engine "
            "measures the same path without a model.", "",
            "### Default models: latency against concurrency, with and without batching", "",
            "ExtractEntities with the Khan–Li article; `--max-batch 16` (the default, dynamic "
            "batching) against `--max-batch 1`.", ""]
    body = []
    names = list(curves)
    for i, conc in enumerate(x["concurrency"] for x in curves[names[0]]):
        row = [conc]
        for n in names:
            x = curves[n][i]
            row += [fmt(x["ok_per_second"]), f"{fmt(x['p50_ms'], 0)} / {fmt(x['p95_ms'], 0)} / "
                    f"{fmt(x['p99_ms'], 0)}"]
        a, b = curves[names[0]][i]["ok_per_second"], curves[names[1]][i]["ok_per_second"]
        row.append(times(a / b if b else None))
        body.append(row)
    header = ["callers"]
    for n in names:
        header += [f"{n}: req/s", f"{n}: p50 / p95 / p99 ms"]
    header.append(f"{names[0]} / {names[1]}")
    out.append(table(header, body))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3))
    for n, color in zip(names, [GIST, PEER]):
        xs = [x["concurrency"] for x in curves[n]]
        a1.plot(xs, [x["ok_per_second"] for x in curves[n]], "o-", color=color, label=n)
        a2.plot(xs, [x["p50_ms"] for x in curves[n]], "o-", color=color, label=f"{n} p50")
        a2.plot(xs, [x["p95_ms"] for x in curves[n]], "o:", color=color, label=f"{n} p95")
    for a in (a1, a2):
        a.set_xscale("log", base=2)
        a.set_xlabel("concurrent callers")
        a.legend(fontsize=7)
    a1.set_ylabel("requests/s")
    a2.set_ylabel("latency ms")
    a2.set_yscale("log")
    a1.set_title("throughput")
    a2.set_title("latency")
    out += ["", r.save(fig, "server-latency.svg")]
    return "\n".join(out)


def codes(c):
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "–"


def section_soak(r, soak, targets):
    f = soak["final"]
    out = ["## 5. Soak: a steady rate, memory over time", "",
           f"`gist serve` with the default models (`--queue-capacity 64`) under a steady "
           f"{soak['rate']} requests/s for {f['seconds']:.0f} s — 60% of what 8 closed-loop "
           f"callers got through just before ({fmt(soak['calibration']['ok_per_second'])}/s) — "
           "ExtractEntities, Summarize and Analyze in turn, over 4 connections, the server's "
           "resident memory sampled throughout.", "",
           table(["requests", "codes", "p50 / p95 / p99 ms", "RSS after load MB",
                  "RSS first / last quarter MB", "peak RSS MB", "budget"],
                 [[f["requests"], codes(f["codes"]),
                   f"{fmt(f['p50_ms'], 0)} / {fmt(f['p95_ms'], 0)} / {fmt(f['p99_ms'], 0)}",
                   fmt(soak["rss_after_load_mb"], 0),
                   f"{fmt(soak['rss_first_quarter_mb'], 0)} / {fmt(soak['rss_last_quarter_mb'], 0)}",
                   f"**{fmt(soak['peak_rss_mb'], 0)}**", f"< {targets['memory_mb']} MB"]])]
    fig, ax = plt.subplots(figsize=(7, 3))
    mem = soak["memory"]
    ax.plot([t for t, _ in mem], [m for _, m in mem], color=GIST, label="RSS MB")
    ax.set_ylim(0, max([m for _, m in mem] + [targets["memory_mb"]]) * 1.1)
    ax.axhline(targets["memory_mb"], color="grey", ls=":", lw=1, label="budget")
    ax.set_xlabel("seconds")
    ax.set_ylabel("resident MB", color=GIST)
    ax2 = ax.twinx()
    iv = soak["intervals"]
    ax2.step([x["interval_end_s"] for x in iv], [x["ok_per_second"] for x in iv], where="pre",
             color=PEER, label="answered/s")
    ax2.set_ylabel("answered requests/s", color=PEER)
    ax2.set_ylim(0, max([x["ok_per_second"] for x in iv] + [1]) * 1.5)
    ax.set_title("soak: memory and throughput")
    out += ["", r.save(fig, "soak.svg")]
    if iv:
        bad = [x for x in iv if set(x["codes"]) - {"OK", "ResourceExhausted"}]
        out += ["", f"{len(iv)} intervals of {iv[0]['interval_end_s']:.0f} s; "
                + ("every answer OK or a configured overload rejection (RESOURCE_EXHAUSTED)."
                   if not bad else f"**{len(bad)} intervals had other errors**: "
                   + "; ".join(codes(x["codes"]) for x in bad[:3]))]
    return "\n".join(out)


def section_profile(r, prof):
    if "skipped" in prof:
        return "## 6. Profile\n\nSkipped: " + prof["skipped"]
    sides = prof["sides"]
    out = ["## 6. Profile: where the NER time goes", "",
           f"`perf record -e cpu-clock -F 499` of {prof['seconds']:.0f} s of the default NER model "
           f"on one {prof['words']}-word article, one caller, on each side, sampling from the "
           "end of start-up (" + ", ".join(f"{k} {v['startup_seconds']} s"
                                           for k, v in prof["sides"].items())
           + ": loading, and for Python the imports).", "",
           "### By library", ""]
    for side, data in sides.items():
        out += [f"**{side}** — " + ", ".join(f"{name} {share:.1f}%"
                                             for share, name in data["dso"]), ""]
    out += ["### Top symbols", ""]
    for side, data in sides.items():
        out += [f"**{side}**", "", table(["share", "symbol"],
                                         [[f"{s:.1f}%", f"`{n[:90]}`"] for s, n in data["sym"]]),
                ""]
    return "\n".join(out)


def section_targets(r, parts, t):
    rows, ratios = [], []
    ner = parts.get("ner")
    if ner:
        for model in dict.fromkeys(x["model"] for x in ner["rows"]):
            mine = [x for x in ner["rows"] if x["model"] == model]
            met = sum(1 for x in mine if x["ratio"] and x["ratio"] >= t["ner"])
            g = geomean([x["ratio"] for x in mine])
            rows.append([f"NER throughput, {ner_label(model)}", f"≥ {t['ner']}×",
                         f"{times(min(x['ratio'] for x in mine))} – "
                         f"{times(max(x['ratio'] for x in mine))} (geometric mean {times(g)})",
                         f"met in {met} of {len(mine)} settings; " + verdict(g, t["ner"])
                         + " on the geometric mean"])
            ratios += [(f"NER {x['words']}w×{x['concurrency']} "
                        f"{'default' if model == 'default' else 'BERT-base'}",
                        x["ratio"], t["ner"]) for x in mine]
    onnx = parts.get("onnx")
    if onnx:
        d = lambda x, k: x[k]["docs_per_span_second"]
        for x in onnx["ner"]:
            where = f"NER {onnx['words']}w×{x['concurrency']}" + (" contended" if x["contention"] else "")
            for precision in ("fp32", "int8"):
                v = ratio_(d(x, f"gist_{precision}"), d(x, f"ort_{precision}"))
                rows.append([f"{where}: gist-ORT / Python-ORT, {precision}",
                             f"≥ {t['onnx_vs_python_ort']}×", times(v),
                             verdict(v, t["onnx_vs_python_ort"])])
                ratios.append((f"{where} ORT {precision} / Py-ORT", v, t["onnx_vs_python_ort"]))
            for precision in ("fp32", "int8"):
                v = ratio_(d(x, f"gist_{precision}"), d(x, "transformers"))
                rows.append([f"{where}: gist-ORT {precision} / transformers pipeline",
                             f"≥ {t['onnx_ner_vs_transformers']}×", times(v),
                             verdict(v, t["onnx_ner_vs_transformers"])])
        kp = onnx["keypoints"]
        for precision in ("fp32", "int8"):
            v = ratio_(kp[f"gist_{precision}"]["articles_per_second"],
                       kp[f"ort_{precision}"]["articles_per_second"])
            rows.append([f"key points: gist-ORT / Python-ORT, {precision}",
                         f"≥ {t['onnx_vs_python_ort']}×", times(v),
                         verdict(v, t["onnx_vs_python_ort"])])
            ratios.append((f"key points ORT {precision} / Py-ORT", v, t["onnx_vs_python_ort"]))
        for precision in ("fp32", "int8"):
            peak = onnx["serve"][precision]["peak_rss_mb"]
            rows.append([f"`gist serve` (ONNX-only build) peak RSS, default models, {precision}",
                         f"≤ {t['onnx_memory_mb']} MB", f"{fmt(peak, 0)} MB",
                         verdict(peak, t["onnx_memory_mb"], higher_is_better=False)])
        sz = onnx["sizes"]
        total = sz["gist_binary_mb"] + sz["libonnxruntime_mb"]
        rows.append(["ONNX-only binary (stripped) + libonnxruntime",
                     f"≤ {t['onnx_size_mb']} MB", f"{fmt(total, 1)} MB",
                     verdict(total, t["onnx_size_mb"], higher_is_better=False)])
    gen = parts.get("generate")
    if gen:
        for x in gen["rows"]:
            rows.append([f"generation, {x['beams']} beam{'s' if x['beams'] > 1 else ''}",
                         f"≥ {t['generate']}×", times(x["ratio"]),
                         verdict(x["ratio"], t["generate"])])
            ratios.append((f"generate, beams {x['beams']}", x["ratio"], t["generate"]))
    kp = parts.get("keypoints")
    if kp:
        rows.append(["key points", f"≥ {t['keypoints']}×", times(kp["ratio"]),
                     verdict(kp["ratio"], t["keypoints"])])
        ratios.append(("key points", kp["ratio"], t["keypoints"]))
    srv = parts.get("server")
    if srv:
        share, fake_share = srv["overhead"]["share"], srv["overhead"]["fake_share"]
        # None when no request finished in the window (a quick run on a loaded machine).
        pct = lambda x, digits: "–" if x is None else f"{fmt(100 * x, digits)}%"
        rows.append(["server overhead, default NER, one client", f"< {100 * t['overhead']:.0f}% "
                     "of model time", f"{pct(share, 1)} (fake engine: {pct(fake_share, 2)})",
                     verdict(share, t["overhead"], higher_is_better=False)])
    soak = parts.get("soak")
    if soak:
        rows.append(["`gist serve` resident memory, default models", f"< {t['memory_mb']} MB",
                     f"{fmt(soak['peak_rss_mb'], 0)} MB peak",
                     verdict(soak["peak_rss_mb"], t["memory_mb"], higher_is_better=False)])
    out = ["## Targets", "", table(["comparison", "target", "measured (gist / peer)", "verdict"],
                                   rows)]
    if ratios:
        fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(ratios) + 1))
        ys = range(len(ratios))[::-1]
        colors = [GIST if v and v >= tg else PEER for _, v, tg in ratios]
        ax.barh(list(ys), [v or 0 for _, v, _ in ratios], color=colors)
        for y, (_, v, tg) in zip(ys, ratios):
            ax.plot([tg, tg], [y - 0.4, y + 0.4], color="black", lw=1)
            ax.annotate(times(v), (v or 0, y), xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=7)
        ax.set_yticks(list(ys), [n for n, _, _ in ratios], fontsize=7)
        ax.axvline(1, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("gist / peer (higher is faster; black tick: target; blue: met)")
        out += ["", r.save(fig, "ratios.svg")]
    return "\n".join(out)


def render(parts, meta, plots_dir, md_dir, targets):
    r = Report(plots_dir, md_dir)
    m = meta["machine"]
    out = ["# Benchmarks", "",
           ("**Quick mode: tiny inputs, for CI's smoke test. These numbers mean nothing.**\n\n"
            if meta.get("quick") else "")
           + "gist against the peers a user would pick instead, each measured side by side in "
           "one run on the same machine, with the same libtorch (2.4.0, CPU) and the same "
           f"thread count ({meta['threads']}) on both sides. These machines are shared and "
           "absolute times drift, so the ratios are what to read. Generated by "
           "`bench/run.py` (tables and plots from `bench/report.py`); nothing here is "
           "written by hand except the findings at the end.", "",
           f"- **Command:** `{meta['command']}` ({meta['minutes']} minutes, {meta['date']})"
           + "".join(f"; rerun of {', '.join(x['parts'])}: `{x['command']}` ({x['date']})"
                     for x in meta.get("reruns", [])),
           f"- **Machine:** {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
           f"{m['os']}, Linux {m['kernel']}",
           f"- **Versions:** gist {m['gist']}, {m['rustc']}, rust-bert {m['rust-bert']}, "
           f"tch {m['tch']}, tonic {m['tonic']}; Python {m['python']}"]
    versions = None
    for part in ("ner", "generate", "keypoints"):
        data = parts.get(part) or {}
        peer = (data.get("rows") or [{}])[0].get("peer") if part == "ner" else data.get("peer")
        if peer and peer.get("versions"):
            versions = peer["versions"]
            break
    if versions:
        out[-1] += (f", torch {versions['torch']}, transformers {versions['transformers']}, "
                    f"tokenizers {versions['tokenizers']}")
    out += ["", section_targets(r, parts, targets)]
    for name, fn in [("ner", section_ner), ("onnx", section_onnx), ("generate", section_generate),
                     ("keypoints", section_keypoints), ("server", section_server)]:
        if name in parts:
            out += ["", fn(r, parts[name])]
    if "soak" in parts:
        out += ["", section_soak(r, parts["soak"], targets)]
    if "profile" in parts:
        out += ["", section_profile(r, parts["profile"])]
    findings = os.path.join(HERE, "FINDINGS.md")
    if not meta.get("quick") and os.path.exists(findings):
        with open(findings, encoding="utf-8") as f:
            out += ["", f.read().strip()]
    out += ["", "## Reproduce", "",
            "From a fresh clone (it prepares libtorch, the default models, grpcurl and the "
            "peers' Python environment first): `bench/run.sh` for this report, "
            "`bench/run.sh --quick` for the smoke test CI runs, `bench/run.sh --only PART` to "
            "rerun one part (ner, generate, keypoints, server, soak, profile). See "
            "[bench/README.md](bench/README.md)."]
    return "\n".join(out) + "\n"
