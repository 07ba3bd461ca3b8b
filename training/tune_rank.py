#!/usr/bin/env python3
"""Choose gist's key-point ranking weights on a development set.

Reads the candidates written by `cargo run --release --example rank_features -- DEV.jsonl`
(each article's content sentences with their MiniLM embeddings, the reference highlights and
the Lead-3 text), re-implements `src/text/rank.rs::select` exactly, and grid-searches its
weights for mean ROUGE-1 + ROUGE-2 F1 (the `rouge-score` package's tokenizer and Porter
stemmer). ROUGE-Lsum and the final numbers come from `gist eval summarize`, which runs the
Rust code itself.

    python training/tune_rank.py /tmp/features.jsonl [--grid small|full]

Needs numpy and rouge-score (training/requirements.txt).
"""
import argparse
import itertools
import json
import sys
from collections import Counter

import numpy as np
from rouge_score import tokenize
from nltk.stem import porter

STEMMER = porter.PorterStemmer()
_stem_cache = {}


def toks(text):
    out = []
    for t in tokenize.tokenize(text, None):
        s = _stem_cache.get(t)
        if s is None:
            s = STEMMER.stem(t) if len(t) > 3 else t
            _stem_cache[t] = s
        out.append(s)
    return out


def ngrams(tokens, n):
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def f1(ref, cand):
    overlap = sum((ref & cand).values())
    if overlap == 0:
        return 0.0
    p = overlap / max(sum(cand.values()), 1)
    r = overlap / max(sum(ref.values()), 1)
    return 2 * p * r / (p + r)


class Item:
    def __init__(self, d):
        self.ref_toks = toks(d["reference"])
        self.ref1, self.ref2 = ngrams(self.ref_toks, 1), ngrams(self.ref_toks, 2)
        self.sent_toks = [toks(s["text"]) for s in d["sentences"]]
        self.words = np.array([s["words"] for s in d["sentences"]], dtype=np.float32)
        e = np.array([s["embedding"] for s in d["sentences"]], dtype=np.float32)
        if len(e) == 0:
            e = np.zeros((0, 384), dtype=np.float32)
        self.sim = e @ e.T
        c = e.sum(0)
        n = np.linalg.norm(c)
        self.central = e @ (c / n) if n > 0 else np.zeros(len(e), np.float32)
        self.opening = self.sim[0] if len(e) else np.zeros(0, np.float32)
        self.pos = np.arange(len(e), dtype=np.float32)
        lead3 = toks(d["lead3"])
        self.lead = (f1(self.ref1, ngrams(lead3, 1)), f1(self.ref2, ngrams(lead3, 2)))

    def score(self, chosen):
        t = [w for i in sorted(chosen) for w in self.sent_toks[i]]
        return f1(self.ref1, ngrams(t, 1)), f1(self.ref2, ngrams(t, 2))


def select(it, k, w):
    """Mirror of src/text/rank.rs::select."""
    n = len(it.pos)
    if n == 0 or k == 0:
        return []
    lead = 1.0 / (1.0 + it.pos / w["lead_scale"])
    r = w["centrality"] * it.central + w["lead"] * lead + w["opening"] * it.opening
    r = np.where(it.words < w["min_words"], r * 0.5, r)
    r = np.where(it.words > w["long_words"], r * w["long_factor"], r)
    r = np.clip(r, 0.0, 1.0)
    chosen, total_words = [], 0.0
    while len(chosen) < min(k, n):
        best = None
        for i in range(n):
            if i in chosen:
                continue
            red = max((it.sim[i, j] for j in chosen), default=0.0)
            red = max(red, 0.0)
            dup = red > w["duplicate"]
            s = w["mmr"] * r[i] - (1 - w["mmr"]) * red
            key = (not dup, s, -i)
            if best is None or key > best[0]:
                best = (key, i)
        i = best[1]
        if chosen and total_words + it.words[i] > w["word_budget"]:
            break
        chosen.append(i)
        total_words += it.words[i]
    return chosen


def evaluate(items, k, w):
    s = np.array([it.score(select(it, k, w)) for it in items])
    return 100 * s.mean(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("features")
    ap.add_argument("--grid", default="small")
    ap.add_argument("--k", type=int, default=3)
    args = ap.parse_args()
    items = [Item(json.loads(l)) for l in open(args.features)]
    lead = 100 * np.array([it.lead for it in items]).mean(0)
    print(f"{len(items)} items; Lead-3 R1 {lead[0]:.2f} R2 {lead[1]:.2f}", flush=True)
    base = dict(centrality=0.45, lead=0.35, lead_scale=3.0, opening=0.2, mmr=0.7,
                min_words=6, duplicate=0.9, long_words=1e9, long_factor=1.0,
                word_budget=1e9)
    r = evaluate(items, args.k, base)
    print(f"current defaults: R1 {r[0]:.2f} R2 {r[1]:.2f}", flush=True)
    if args.grid == "small":
        grid = dict(centrality=[0.3, 0.45], lead=[0.35, 0.5, 0.7], lead_scale=[1.0, 2.0, 3.0],
                    opening=[0.2, 0.4], mmr=[0.7, 0.85], word_budget=[1e9, 70, 85, 100],
                    long_words=[1e9, 40], long_factor=[0.8])
    else:
        grid = json.loads(args.grid)
    keys = list(grid)
    results = []
    for values in itertools.product(*(grid[k] for k in keys)):
        w = dict(base, **dict(zip(keys, values)))
        r = evaluate(items, args.k, w)
        results.append((r[0] + r[1], r[0], r[1], dict(zip(keys, values))))
    results.sort(key=lambda x: -x[0])
    lead_r1, lead_r2 = lead
    both = [r for r in results if r[1] > lead_r1 and r[2] >= lead_r2]
    print(f"{len(both)} of {len(results)} settings beat Lead-3 on both; best by R1+R2:")
    for tot, r1, r2, w in (both or results)[:15]:
        print(f"R1 {r1:.2f} R2 {r2:.2f}  {json.dumps(w)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
