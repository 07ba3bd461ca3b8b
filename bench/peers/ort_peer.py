#!/usr/bin/env python3
"""ONNX Runtime peer: the same model.onnx files gist's ONNX engine runs, driven from Python
the way a user would write it: `onnxruntime.InferenceSession`, Hugging Face `tokenizers`
with the folder's tokenizer.json, numpy for the rest, the same intra-op thread count.

    .venv/bin/python ort_peer.py ner --model ../../models/conll03-minilm-ner --precision int8 \
        --words 800 --concurrency 1 --seconds 10 --threads 2
    .venv/bin/python ort_peer.py keypoints --model ../../models/all-MiniLM-L6-v2 \
        --input articles.jsonl --text-field text --limit 30 --threads 2

Prints one JSON line, in the shape of ner_peer.py's runs (`ner`) or keypoints_peer.py's
result (`keypoints`), so bench/run.py compares the fields alike.

ner: the article is tokenized once with truncation to --window tokens and --stride tokens of
overlap (tokenizers' overflowing windows, as the transformers pipeline's stride does); the
windows run in batches of --batch-size; each token keeps the prediction of the first window
that holds it outside that window's overlap; a word takes its first sub-token's label, and
B-/I- runs of one type become one entity (the pipeline's "simple" aggregation).
keypoints: keypoints_peer.py's sentence splitting and ranking (gist's mirrors), with the
encoder run by ONNX Runtime: sentences sorted by length, batches of 32 (sentence-transformers'
`encode` does the same), at most 256 tokens, mean pooling over the attention mask, unit
length. `--batches planned` cuts the sorted sentences as gist does instead (a mirror of
src/engine/embedding.rs `plan`: a pass costs 32 token slots beyond rows x its widest row),
to measure the two with the same batches; bench/run.py measures the default.
"""
import argparse
import json
import os
import threading
import time

import numpy as np

import peerlib


def session(model_dir, precision, threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    name = "model.onnx" if precision == "fp32" else "model.int8.onnx"
    return ort.InferenceSession(os.path.join(model_dir, name), options,
                                providers=["CPUExecutionProvider"])


def tokenizer(model_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def pad(rows, pad_id=0):
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
        mask[i, :len(r)] = 1
    return ids, mask


# --- ner ----------------------------------------------------------------------------------
class Tagger:
    def __init__(self, args):
        self.session = session(args.model, args.precision, args.threads)
        self.tok = tokenizer(args.model)
        self.tok.enable_truncation(max_length=args.window, stride=args.stride)
        with open(os.path.join(args.model, "config.json")) as f:
            labels = json.load(f)["id2label"]
        self.labels = [labels[str(i)] for i in range(len(labels))]
        self.stride = args.stride
        self.batch_size = args.batch_size

    def __call__(self, text):
        enc = self.tok.encode(text)
        windows = [enc] + enc.overflowing
        label, score = {}, {}  # token offsets (start, end) -> label index / probability
        words = {}  # offset start -> word id, per window
        for b in range(0, len(windows), self.batch_size):
            chunk = windows[b:b + self.batch_size]
            ids, mask = pad([w.ids for w in chunk])
            logits = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            probs = np.exp(logits - logits.max(-1, keepdims=True))
            probs /= probs.sum(-1, keepdims=True)
            for k, w in enumerate(chunk):
                first = 0 if b + k == 0 else self.stride + 1  # skip [CLS] and the overlap
                for j in range(first, len(w.ids)):
                    if w.special_tokens_mask[j]:
                        continue
                    off = w.offsets[j]
                    if off in label:
                        continue
                    label[off] = int(probs[k, j].argmax())
                    score[off] = float(probs[k, j].max())
                    words[off] = w.word_ids[j]
        entities, current, last_word = [], None, None
        for off in sorted(label):
            if words[off] == last_word and words[off] is not None:
                continue  # a continuation sub-token: the word has its label already
            last_word = words[off]
            tag = self.labels[label[off]]
            kind = tag[2:] if tag != "O" else None
            if current and kind == current["label"] and not tag.startswith("B-"):
                current["end"] = off[1]
                current["scores"].append(score[off])
                continue
            if current:
                entities.append(current)
            current = {"label": kind, "start": off[0], "end": off[1], "scores": [score[off]]} \
                if kind else None
        if current:
            entities.append(current)
        return [{"label": e["label"], "start": e["start"], "end": e["end"],
                 "text": text[e["start"]:e["end"]], "score": float(np.mean(e["scores"]))}
                for e in entities]


def measure_ner(args):
    started = time.perf_counter()
    tagger = Tagger(args)
    load_seconds = time.perf_counter() - started
    text = peerlib.article(args.words)
    first = tagger.tok.encode(text)
    tokens = sum(len(w.ids) for w in [first] + first.overflowing)  # in all windows
    entities = tagger(text)
    rss_after_load = peerlib.rss_mb()
    start = time.perf_counter()
    deadline = start + args.warmup + args.seconds
    latencies, errors, finished, first_sent = [], [], [], []

    def caller():
        mine = []
        try:
            if args.calls:
                tagger(text)
            while (len(mine) < args.calls) if args.calls else (time.perf_counter() < deadline):
                sent = time.perf_counter()
                tagger(text)
                if args.calls or sent - start >= args.warmup:
                    done = time.perf_counter()
                    mine.append((done - sent) * 1000)
                    finished.append(done)
                    first_sent.append(sent)
        except Exception as err:  # reported, not swallowed: the run fails below
            errors.append(repr(err))
        latencies.extend(mine)

    workers = [threading.Thread(target=caller) for _ in range(args.concurrency)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise SystemExit(f"ort_peer: {len(errors)} caller(s) failed: {errors[0]}")
    latencies.sort()
    origin = min(first_sent, default=start) if args.calls else start + args.warmup
    span = max(finished, default=origin) - origin
    return {
        "peer": "ort-ner", "model": os.path.basename(os.path.normpath(args.model)),
        "precision": args.precision, "words": args.words, "window_tokens": tokens,
        "concurrency": args.concurrency, "threads": args.threads, "window": args.window,
        "stride": args.stride, "batch_size": args.batch_size, "seconds": args.seconds,
        "warmup": args.warmup, "calls_per_caller": args.calls, "docs": len(latencies),
        "docs_per_second": round(len(latencies) / (span if args.calls else args.seconds), 3)
        if (span if args.calls else args.seconds) > 0 else 0.0,
        "span_seconds": round(span, 3),
        "docs_per_span_second": round(len(latencies) / span, 3) if span > 0 else 0.0,
        "p50_ms": round(peerlib.percentile(latencies, 0.5), 1),
        "p95_ms": round(peerlib.percentile(latencies, 0.95), 1),
        "entities": len(entities), "load_seconds": round(load_seconds, 2),
        "rss_after_load_mb": round(rss_after_load, 1),
        "peak_rss_mb": round(peerlib.peak_rss_mb(), 1),
    }


# --- keypoints ----------------------------------------------------------------------------
EMBED_BATCH = 32
MAX_TOKENS = 256


PASS_COST = 32


def plan(widths, max_rows=EMBED_BATCH, pass_cost=PASS_COST):
    """src/engine/embedding.rs `plan`: cut ascending `widths` into consecutive batches of at
    most `max_rows` with the least sum of pass_cost + rows x widest row; [(start, end)]."""
    n = len(widths)
    best, start = [0] * (n + 1), [0] * (n + 1)
    for j in range(1, n + 1):
        cost, frm = None, j - 1
        for i in range(max(0, j - max_rows), j):
            c = best[i] + pass_cost + (j - i) * widths[j - 1]
            if cost is None or c < cost:
                cost, frm = c, i
        best[j], start[j] = cost, frm
    out, j = [], n
    while j > 0:
        out.append((start[j], j))
        j = start[j]
    return out[::-1]


def embed(sess, tok, sentences, batches="fixed"):
    counts = [len(e.ids) for e in tok.encode_batch(sentences)]
    order = sorted(range(len(sentences)), key=lambda i: counts[i])
    if batches == "planned":
        cuts = plan([min(counts[i], MAX_TOKENS) for i in order])
    else:
        cuts = [(b, min(b + EMBED_BATCH, len(order))) for b in range(0, len(order), EMBED_BATCH)]
    out = None
    for lo, hi in cuts:
        chunk = order[lo:hi]
        encs = [tok.encode(sentences[i]) for i in chunk]
        ids, mask = pad([e.ids[:MAX_TOKENS - 1] + e.ids[-1:] if len(e.ids) > MAX_TOKENS
                         else e.ids for e in encs])
        hidden = sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        if out is None:
            out = np.zeros((len(sentences), pooled.shape[1]), dtype=np.float32)
        out[chunk] = pooled
    return out, sum(counts)


def run_keypoints(args):
    import keypoints_peer as kp

    texts, ids = [], []
    with open(args.input, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            texts.append(record[args.text_field])
            ids.append(record.get("id", n))
            if args.limit and len(texts) > args.limit:  # one more: the warm-up article
                break
    started = time.perf_counter()
    sess = session(args.model, args.precision, args.threads)
    tok = tokenizer(args.model)
    load_seconds = time.perf_counter() - started

    def key_points(text, timing):
        t0 = time.perf_counter()
        sentences = kp.split(text)
        content = [s for s, boilerplate in sentences if not boilerplate]
        candidates = content or [s for s, _ in sentences]
        t1 = time.perf_counter()
        emb, tokens = embed(sess, tok, candidates, args.batches)
        t2 = time.perf_counter()
        chosen = kp.select(emb, [len(s.split()) for s in candidates], args.k)
        timing["split"] += t1 - t0
        timing["embed"] += t2 - t1
        timing["rank"] += time.perf_counter() - t2
        timing["sentences"] += len(candidates)
        timing["tokens"] += tokens
        return [{"text": candidates[i], "score": round(score, 4)} for i, score in chosen]

    key_points(texts[0], dict(split=0.0, embed=0.0, rank=0.0, sentences=0, tokens=0))
    timing = dict(split=0.0, embed=0.0, rank=0.0, sentences=0, tokens=0)
    results = []
    t = time.perf_counter()
    for text in texts[1:]:
        results.append(key_points(text, timing))
    seconds = time.perf_counter() - t
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            for id_, points in zip(ids[1:], results):
                f.write(json.dumps({"id": id_, "key_points": points}, ensure_ascii=False) + "\n")
    return {
        "peer": "ort-keypoints", "model": os.path.basename(os.path.normpath(args.model)),
        "precision": args.precision, "threads": args.threads, "k": args.k,
        "batches": args.batches, "articles": len(results), "seconds": round(seconds, 3),
        "articles_per_second": round(len(results) / seconds, 3),
        "sentences": timing["sentences"], "tokens": timing["tokens"],
        "stage_seconds": {s: round(timing[s], 3) for s in ("split", "embed", "rank")},
        "load_seconds": round(load_seconds, 2), "peak_rss_mb": round(peerlib.peak_rss_mb(), 1),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="part", required=True)
    for name in ("ner", "keypoints"):
        p = sub.add_parser(name)
        p.add_argument("--model", required=True, help="folder with model.onnx and tokenizer.json")
        p.add_argument("--precision", choices=["fp32", "int8"], default="fp32")
        p.add_argument("--threads", type=int, default=0,
                       help="ONNX Runtime intra-op threads (0: its default)")
        p.add_argument("--quick", action="store_true", help="tiny inputs: a smoke test")
    ner = sub.choices["ner"]
    ner.add_argument("--words", type=int, default=800)
    ner.add_argument("--concurrency", type=int, default=1)
    ner.add_argument("--seconds", type=float, default=10.0)
    ner.add_argument("--warmup", type=float, default=2.0)
    ner.add_argument("--calls", type=int, default=None)
    ner.add_argument("--window", type=int, default=512)
    ner.add_argument("--stride", type=int, default=128)
    ner.add_argument("--batch-size", type=int, default=8)
    keyp = sub.choices["keypoints"]
    keyp.add_argument("--input", required=True)
    keyp.add_argument("--text-field", default="article")
    keyp.add_argument("--limit", type=int, default=30)
    keyp.add_argument("--k", type=int, default=5)
    keyp.add_argument("--output")
    keyp.add_argument("--batches", choices=["fixed", "planned"], default="fixed",
                      help="fixed: length-sorted batches of 32, as a user writes it; planned: "
                           "cut as gist's engine cuts them")
    args = ap.parse_args()
    if args.part == "ner":
        if args.quick:
            args.words, args.seconds, args.warmup = 60, 1.0, 0.0
        result = measure_ner(args)
    else:
        if args.quick:
            args.limit = 3
        result = run_keypoints(args)
    import onnxruntime
    import tokenizers

    result["versions"] = {"onnxruntime": onnxruntime.__version__,
                          "tokenizers": tokenizers.__version__}
    peerlib.emit(result)


if __name__ == "__main__":
    main()
