#!/usr/bin/env python3
"""NER peer: the `transformers` token-classification pipeline (aggregation_strategy="simple")
served to N concurrent callers, for comparison with gist's ExtractEntities.

    .venv/bin/python ner_peer.py --model ../../models/conll03-minilm-ner \
        --words 200,800,3000 --concurrency 1,8 --seconds 20 --threads 2
    .venv/bin/python ner_peer.py --model ../../models/conll03-minilm-ner --random-bert-base ...
    .venv/bin/python ner_peer.py --model ../../models/conll03-minilm-ner --quick

Prints one JSON line. Each (words, concurrency) setting runs in a fresh process, so that its
peak RSS is its own. Within a setting, `concurrency` threads of one process share one
pipeline and call it in a closed loop (how a Python gRPC server with a thread pool serves
one model), for a warm-up and then `--seconds`; latencies and throughput are counted the
way gist's examples/loadgen.rs counts them. Articles are khan-li-call.txt repeated to the
word count (peerlib.article; `--write-texts DIR` writes them out for gist's loadgen).

The pipeline is given `stride` so that it tags the whole article: without it transformers
4.44 silently truncates every text to the model window (512 tokens, about 380 words).
"""
import argparse
import json
import os
import sys
import threading
import time

import peerlib

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True,
                    help="token classifier folder (config.json, weights, vocab.txt); with "
                         "--random-bert-base only its vocab and labels are used")
    ap.add_argument("--random-bert-base", action="store_true",
                    help="BERT-base shape (12 layers, hidden 768, 12 heads, FFN 3072) with "
                         "random weights (seed 0)")
    ap.add_argument("--save-random", metavar="DIR",
                    help="write the --random-bert-base model (safetensors, config, vocab) to "
                         "DIR, for gist to load the identical weights, and exit")
    ap.add_argument("--words", default="200,800,3000", help="article lengths in words")
    ap.add_argument("--concurrency", default="1,8", help="concurrent callers")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured time per setting")
    ap.add_argument("--warmup", type=float, default=2.0,
                    help="seconds of calls not counted (gist's loadgen: 2)")
    ap.add_argument("--calls", type=int, default=None,
                    help="count calls instead of time: each caller makes one warm-up call, then "
                         "this many measured ones (as gist's examples/bench_ner.rs --calls)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch intra-op and inter-op threads (0: torch's default)")
    ap.add_argument("--window", type=int, default=512,
                    help="model window in tokens (the pipeline's chunk size)")
    ap.add_argument("--stride", type=int, default=None,
                    help="tokens of overlap between windows (default: window / 4, as gist)")
    ap.add_argument("--batch-size", type=int, default=1,
                    help="the pipeline's batch_size (windows per forward pass); 1 is its default")
    ap.add_argument("--write-texts", metavar="DIR",
                    help="also write each article as DIR/article-<words>w.txt")
    ap.add_argument("--quick", action="store_true",
                    help="tiny articles (60 words), 1 s per setting, no warm-up: a smoke test")
    args = ap.parse_args(argv)
    if args.quick:
        args.words, args.seconds, args.warmup = "60", 1.0, 0.0
    args.word_counts = peerlib.int_list(args.words)
    args.concurrencies = peerlib.int_list(args.concurrency)
    if args.stride is None:
        args.stride = args.window // 4
    return args


def load(args):
    import torch
    from transformers import (AutoConfig, AutoModelForTokenClassification, AutoTokenizer,
                              BertConfig, BertForTokenClassification)

    tokenizer = AutoTokenizer.from_pretrained(args.model, use_fast=True,
                                              clean_up_tokenization_spaces=True)
    if not tokenizer.is_fast:
        raise SystemExit(f"{args.model}: no fast tokenizer (the pipeline's stride needs one)")
    tokenizer.model_max_length = args.window
    if args.random_bert_base:
        labels = AutoConfig.from_pretrained(args.model).id2label
        config = BertConfig(vocab_size=len(tokenizer), hidden_size=768, num_hidden_layers=12,
                            num_attention_heads=12, intermediate_size=3072,
                            max_position_embeddings=512, id2label=labels,
                            label2id={v: k for k, v in labels.items()})
        torch.manual_seed(0)
        model = BertForTokenClassification(config)
        name = "random-bert-base"
    else:
        model = AutoModelForTokenClassification.from_pretrained(args.model)
        name = os.path.basename(os.path.normpath(args.model))
    # float(): gist's NER file keeps fp16 tensors beside fp32 ones, which transformers keeps
    # per tensor and CPU LayerNorm then rejects (training/README.md); rust-bert casts too.
    model = model.float().eval()
    return name, model, tokenizer


def save_random(args):
    name, model, tokenizer = load(args)
    os.makedirs(args.save_random, exist_ok=True)
    model.save_pretrained(args.save_random, safe_serialization=True)
    tokenizer.save_pretrained(args.save_random)
    peerlib.emit({"peer": "ner", "saved": args.save_random, "model": name,
                  "parameters": sum(p.numel() for p in model.parameters())})


def measure(args):
    """One (words, concurrency) setting in this process."""
    from transformers import pipeline

    threads = peerlib.set_threads(args.threads)
    started = time.perf_counter()
    name, model, tokenizer = load(args)
    tagger = pipeline("token-classification", model=model, tokenizer=tokenizer,
                      aggregation_strategy="simple", device=-1)
    load_seconds = time.perf_counter() - started
    words, concurrency = args.word_counts[0], args.concurrencies[0]
    text = peerlib.article(words)
    tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    windows = len(tokenizer(text, truncation=True, max_length=args.window, stride=args.stride,
                            return_overflowing_tokens=True)["input_ids"])
    entities = tagger(text, stride=args.stride, batch_size=args.batch_size)
    rss_after_load = peerlib.rss_mb()

    start = time.perf_counter()
    deadline = start + args.warmup + args.seconds
    latencies, errors, finished = [], [], []

    first_sent = []

    def caller():
        mine = []
        try:
            if args.calls:
                tagger(text, stride=args.stride, batch_size=args.batch_size)
            while (len(mine) < args.calls) if args.calls else (time.perf_counter() < deadline):
                sent = time.perf_counter()
                tagger(text, stride=args.stride, batch_size=args.batch_size)
                if args.calls or sent - start >= args.warmup:
                    done = time.perf_counter()
                    mine.append((done - sent) * 1000)
                    finished.append(done)
                    first_sent.append(sent)
        except Exception as err:  # reported, not swallowed: the run fails below
            errors.append(repr(err))
        latencies.extend(mine)

    workers = [threading.Thread(target=caller) for _ in range(concurrency)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise SystemExit(f"ner_peer: {len(errors)} caller(s) failed: {errors[0]}")
    latencies.sort()
    # gist's loadgen divides the calls started in the window by --seconds; calls still
    # running at the deadline are waited for, so also give the rate over the real span.
    origin = min(first_sent, default=start) if args.calls else start + args.warmup
    span = max(finished, default=origin) - origin
    return {
        "peer": "ner", "model": name, "parameters": sum(p.numel() for p in model.parameters()),
        "words": words, "tokens": tokens, "windows": windows, "concurrency": concurrency,
        "threads": threads, "window": args.window, "stride": args.stride,
        "batch_size": args.batch_size, "seconds": args.seconds, "warmup": args.warmup,
        "calls_per_caller": args.calls,
        "docs": len(latencies),
        "docs_per_second": round(len(latencies) / (span if args.calls else args.seconds), 3)
        if (span if args.calls else args.seconds) > 0 else 0.0,
        "span_seconds": round(span, 3),
        "docs_per_span_second": round(len(latencies) / span, 3) if span > 0 else 0.0,
        "p50_ms": round(peerlib.percentile(latencies, 0.5), 1),
        "p95_ms": round(peerlib.percentile(latencies, 0.95), 1),
        "p99_ms": round(peerlib.percentile(latencies, 0.99), 1),
        "entities": len(entities), "load_seconds": round(load_seconds, 2),
        "rss_after_load_mb": round(rss_after_load, 1),
        "peak_rss_mb": round(peerlib.peak_rss_mb(), 1),
    }


def main():
    args = parse_args()
    if args.write_texts:
        os.makedirs(args.write_texts, exist_ok=True)
        for words in args.word_counts:
            with open(os.path.join(args.write_texts, f"article-{words}w.txt"), "w") as f:
                f.write(peerlib.article(words) + "\n")
    if args.save_random:
        if not args.random_bert_base:
            raise SystemExit("--save-random needs --random-bert-base")
        return save_random(args)
    grid = [(w, c) for w in args.word_counts for c in args.concurrencies]
    if len(grid) == 1:
        run = measure(args)
        runs = [run]
    else:
        base = [a for a in sys.argv[1:]]
        # children get one setting each; --quick/--words/--concurrency given later win
        runs = peerlib.run_children(os.path.abspath(__file__), base,
                                    [["--words", str(w), "--concurrency", str(c)]
                                     for w, c in grid])
    peerlib.emit({"peer": "ner", "versions": peerlib.versions(),
                  "concurrency_model": "threads sharing one pipeline in one process",
                  "runs": runs})


if __name__ == "__main__":
    main()
