#!/usr/bin/env python3
"""Key-points peer: gist's extractive Summarize in Python — the same sentence splitting,
the same MiniLM encoder with mean pooling (plain transformers), the same ranking.

    .venv/bin/python keypoints_peer.py --model ../../models/all-MiniLM-L6-v2 \
        --input ../../../shared/data/cnndm/dev.jsonl --text-field article --limit 50 --threads 2
    .venv/bin/python keypoints_peer.py --model ../../models/all-MiniLM-L6-v2 --input ... --quick

Prints one JSON line: articles per second over --limit articles, one after another in one
process (after one warm-up article that is not counted), the time spent in each stage, and
peak RSS. --output FILE writes each article's key points as JSONL, to compare with gist's.

Mirrors of gist's code (keep them in step when that code changes):
- `split`: src/text/sentences.rs — paragraphs at blank lines, then sentencex (the Python
  binding of the same Rust crate: 1.0.32 wraps crate 0.1.32, gist pins 0.1.33), a leading
  dateline cut off each paragraph's first sentence, segments without a letter or digit
  dropped, boilerplate (share rows, sign-offs) left out of the candidates.
- `embed`: src/engine/embedding.rs `embed` as it was until 2026-12-02 (and as
  sentence-transformers' `encode` batches) — sentences sorted by token count, batches of 32,
  at most 256 tokens (sentence_bert_config.json), mean pooling over the attention mask, unit
  length. gist now cuts the sorted sentences by cost (`plan`), padding less; the fp32 key
  points are the same either way.
- `select`: src/text/rank.rs `select` with `RankWeights::default()` (training/tune_rank.py
  holds a numpy mirror of an older version, with other defaults and a word budget).
"""
import argparse
import json
import re
import time

import numpy as np

import peerlib

EMBED_BATCH = 32
MAX_TOKENS = 256
WEIGHTS = dict(centrality=0.45, lead=0.7, lead_scale=3.0, opening=0.2, mmr_lambda=0.7,
               min_words=6, duplicate=0.9, long_words=30, long_factor=0.85)

# --- src/text/sentences.rs -------------------------------------------------------------
BLANK_LINE = re.compile(r"\n[ \t\r\u00a0]*\n")
_L = r"[^\W\d_]"  # a letter (Rust's \p{L})
DATELINE = re.compile(
    r"^\s*(?:"
    rf"(?:date\s+)?\d{{4}}-\d{{2}}-\d{{2}}\s+[A-Z](?:{_L}|[.'’ -]){{0,40}}?\s*:\s*"
    r"|"
    r"[A-Z][A-Z.'’ -]{1,40}(?:,\s*[A-Z][a-z]{2,8}\.?\s+\d{1,2})?\s*(?:\([A-Za-z. ]{1,20}\))?\s*(?:--|[-—–:])\s+"
    r"|"
    rf"(?:[A-Z](?:{_L}|[.'’ ,-]){{0,40}}\s)?\((?:CNN|AP|AFP|Reuters|PTI|IANS)\)\s*(?:--|[-—–:])?\s*"
    r")"
)
SHARE_WORDS = {"facebook", "twitter", "whatsapp", "email", "e-mail", "print", "share",
               "linkedin", "pinterest", "reddit", "telegram", "tumblr", "messenger", "copy",
               "link", "comments", "comment", "tweet", "x", "save", "mail"}
PHRASES = ("advertisement", "read more", "click here", "follow us", "all rights reserved",
           "copyright", "subscribe", "sign up for", "related articles", "scroll down for video")


def dateline_len(s):
    m = DATELINE.match(s)
    if m and sum(c.isalpha() for c in s[m.end():]) >= 3:
        return m.end()
    return 0


def _strip_non_alnum(w):
    start, end = 0, len(w)
    while start < end and not w[start].isalnum():
        start += 1
    while end > start and not w[end - 1].isalnum():
        end -= 1
    return w[start:end]


def is_boilerplate(s):
    lower = s.lower()
    words = [w for w in re.split(r"[\s|·•]", lower) if w]
    if not words:
        return True
    share = sum(_strip_non_alnum(w) in SHARE_WORDS for w in words)
    if len(words) <= 12 and share * 2 > len(words):
        return True
    if len(words) <= 8 and any(p in lower for p in PHRASES):
        return True
    ends_like_sentence = s.rstrip().endswith((".", "!", "?", '"', "”", "’", "'", ")"))
    return len(words) < 3 or (len(words) <= 6 and not ends_like_sentence)


def split(text):
    """[(sentence text, boilerplate)] in document order."""
    import sentencex

    out, start = [], 0
    paragraphs = []
    for gap in BLANK_LINE.finditer(text):
        paragraphs.append((start, gap.start()))
        start = gap.end()
    paragraphs.append((start, len(text)))
    for p_start, p_end in paragraphs:
        para = text[p_start:p_end]
        if not para.strip():
            continue
        first = True
        for b in sentencex.get_sentence_boundaries("en", para):
            s, e = b["start_index"], b["end_index"]
            if e <= s:
                continue
            if first:
                s += dateline_len(para[s:e])
            sentence = para[s:e].strip()
            if not any(c.isalnum() for c in sentence):
                continue
            first = False
            out.append((sentence, is_boilerplate(sentence)))
    return out


# --- src/engine/rust_bert.rs Encoder::embed ---------------------------------------------
def embed(model, tokenizer, sentences):
    import torch

    counts = [len(tokenizer.tokenize(s)) + 2 for s in sentences]
    order = sorted(range(len(sentences)), key=lambda i: counts[i])
    out = np.zeros((len(sentences), model.config.hidden_size), dtype=np.float32)
    for b in range(0, len(order), EMBED_BATCH):
        chunk = order[b:b + EMBED_BATCH]
        batch = tokenizer([sentences[i] for i in chunk], padding=True, truncation=True,
                          max_length=MAX_TOKENS, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        out[chunk] = pooled.numpy()
    return out, sum(counts)


# --- src/text/rank.rs select ------------------------------------------------------------
def _cosine_rows(a, b):
    """cosine() of rank.rs for every row pair: 0 where either vector is zero."""
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    denom = np.outer(na, nb)
    dots = a @ b.T
    return np.where(denom > 0, dots / np.where(denom > 0, denom, 1), 0).astype(np.float32)


def select(emb, words, k, w=WEIGHTS):
    """[(candidate index, relevance)] in document order; candidate i is at position i."""
    n = len(emb)
    if n == 0 or k == 0:
        return []
    centroid = emb.sum(0, dtype=np.float32)
    norm = np.sqrt((centroid * centroid).sum())
    if norm > 0:
        centroid = centroid / norm
    pos = np.arange(n, dtype=np.float32)
    lead = 1.0 / (1.0 + pos / np.float32(w["lead_scale"]))
    central = _cosine_rows(emb, centroid[None, :])[:, 0]
    opening = _cosine_rows(emb, emb[:1])[:, 0]
    r = (np.float32(w["centrality"]) * central + np.float32(w["lead"]) * lead
         + np.float32(w["opening"]) * opening).astype(np.float32)
    words = np.asarray(words)
    r = np.where(words < w["min_words"], r * np.float32(0.5), r)
    r = np.where(words > w["long_words"], r * np.float32(w["long_factor"]), r)
    relevance = np.clip(r, 0.0, 1.0)
    sim = _cosine_rows(emb, emb)
    lam = np.float32(w["mmr_lambda"])
    chosen = []
    while len(chosen) < min(k, n):
        best = None
        for i in range(n):
            if i in chosen:
                continue
            redundancy = max([0.0] + [float(sim[i, j]) for j in chosen])
            key = (not redundancy > w["duplicate"],
                   float(lam * relevance[i] - (1 - lam) * np.float32(redundancy)), -i)
            if best is None or key > best[0]:
                best = (key, i)
        chosen.append(best[1])
    return [(i, float(relevance[i])) for i in sorted(chosen)]


def key_points(model, tokenizer, text, k, timing):
    t0 = time.perf_counter()
    sentences = split(text)
    content = [s for s, boilerplate in sentences if not boilerplate]
    candidates = content or [s for s, _ in sentences]
    t1 = time.perf_counter()
    emb, tokens = embed(model, tokenizer, candidates) if candidates else (np.zeros((0, 1)), 0)
    t2 = time.perf_counter()
    chosen = select(emb, [len(s.split()) for s in candidates], k)
    t3 = time.perf_counter()
    timing["split"] += t1 - t0
    timing["embed"] += t2 - t1
    timing["rank"] += t3 - t2
    timing["sentences"] += len(candidates)
    timing["tokens"] += tokens
    return [{"text": candidates[i], "score": round(score, 4)} for i, score in chosen]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="sentence encoder folder (all-MiniLM-L6-v2)")
    ap.add_argument("--input", required=True, help="JSONL file of articles")
    ap.add_argument("--text-field", default="article", help="JSON field holding the text")
    ap.add_argument("--limit", type=int, default=50, help="articles to measure (0: all)")
    ap.add_argument("--k", type=int, default=5, help="key points per article (gist: 5)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch intra-op and inter-op threads (0: torch's default)")
    ap.add_argument("--output", help="write each article's key points here (JSONL)")
    ap.add_argument("--quick", action="store_true", help="3 articles: a smoke test")
    args = ap.parse_args()
    if args.quick:
        args.limit = 3
    threads = peerlib.set_threads(args.threads)
    from transformers import AutoModel, AutoTokenizer

    texts, ids = [], []
    with open(args.input, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            if not isinstance(record.get(args.text_field), str):
                raise SystemExit(f"{args.input}:{n}: no string field {args.text_field!r}")
            texts.append(record[args.text_field])
            ids.append(record.get("id", n))
            if args.limit and len(texts) > args.limit:  # one more: the warm-up article
                break
    if len(texts) < 2:
        raise SystemExit(f"{args.input}: need at least 2 articles (one is the warm-up)")
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(args.model, use_fast=True,
                                              clean_up_tokenization_spaces=True)
    model = AutoModel.from_pretrained(args.model).float().eval()
    load_seconds = time.perf_counter() - started

    warm = dict(split=0.0, embed=0.0, rank=0.0, sentences=0, tokens=0)
    key_points(model, tokenizer, texts[0], args.k, warm)
    timing = dict(split=0.0, embed=0.0, rank=0.0, sentences=0, tokens=0)
    results = []
    t = time.perf_counter()
    for text in texts[1:]:
        results.append(key_points(model, tokenizer, text, args.k, timing))
    seconds = time.perf_counter() - t
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            for id_, points in zip(ids[1:], results):
                f.write(json.dumps({"id": id_, "key_points": points}, ensure_ascii=False) + "\n")
    articles = len(results)
    peerlib.emit({
        "peer": "keypoints", "model": args.model.rstrip("/").split("/")[-1],
        "versions": peerlib.versions(), "threads": threads, "k": args.k,
        "articles": articles, "seconds": round(seconds, 3),
        "articles_per_second": round(articles / seconds, 3),
        "sentences": timing["sentences"], "tokens": timing["tokens"],
        "stage_seconds": {s: round(timing[s], 3) for s in ("split", "embed", "rank")},
        "load_seconds": round(load_seconds, 2),
        "peak_rss_mb": round(peerlib.peak_rss_mb(), 1),
    })


if __name__ == "__main__":
    main()
