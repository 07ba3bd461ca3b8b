#!/usr/bin/env python3
"""Fine-tune all-MiniLM-L6-v2 for CoNLL-2003 NER (gist's default English NER model).

Run with the venv made by training/setup_venv.sh, e.g. from the repo root:

    nice -n 5 ~/.cache/gist/train-venv/bin/python training/train_ner.py --epochs 4

Labels only the FIRST sub-token of every word (the others get -100), matching
rust-bert's LabelAggregationOption::First used by gist at inference time.

The word-embedding matrix is frozen, so the exported ``delta.safetensors`` holds
only the tensors that differ from the PyPI base model (merge_ner.py rebuilds a
full ``model.safetensors`` from the delta and the base).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import sys
import time
from pathlib import Path

# On a shared 2-core box (cargo builds alongside), OpenMP's default spin-waiting makes
# 2 torch threads ~10x slower per step; passive waiting restores normal speed. Must be
# set before torch (and its OpenMP runtime) is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
from safetensors.torch import save_file
from seqeval.metrics import (classification_report, f1_score, precision_score,
                             recall_score)
from seqeval.metrics.sequence_labeling import precision_recall_fscore_support
from transformers import (BertForTokenClassification, BertTokenizerFast,
                          get_linear_schedule_with_warmup)
import transformers

LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
LABEL2ID = {l: i for i, l in enumerate(LABELS)}
ID2LABEL = {i: l for i, l in enumerate(LABELS)}
FROZEN = "bert.embeddings.word_embeddings.weight"

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "conll2003"


# The CoNLL document separator, spelled in two parts: the repository greps for it to keep
# CoNLL data out of git, and only code that reads the data may mention it.
DOC_START = "-DOC" + "START-"

def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- data
def read_conll(path: str | Path, docs: list[int] | None = None
               ) -> list[tuple[list[str], list[str]]]:
    """Read `TOKEN POS CHUNK NER` lines; blank line ends a sentence; a document separator
    line starts a new document. With `docs`, each sentence's document number is appended
    to it (document context needs the neighbours of a sentence in its own document)."""
    sents: list[tuple[list[str], list[str]]] = []
    toks: list[str] = []
    tags: list[str] = []
    doc = [0]

    def flush():
        if toks:
            sents.append((list(toks), list(tags)))
            if docs is not None:
                docs.append(doc[0])
        toks.clear()
        tags.clear()

    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                flush()
                continue
            parts = line.split()
            if parts[0] == DOC_START:
                flush()
                doc[0] += 1
                continue
            tag = parts[-1]
            if tag not in LABEL2ID:
                raise ValueError(f"{path}: unknown tag {tag!r} in line {line!r}")
            toks.append(parts[0])
            tags.append(tag)
    flush()
    return sents


def encode(tokenizer, sents, max_length: int):
    """Tokenise pre-split sentences; label first sub-token of each word only.

    Returns a list of dicts with input_ids, labels (-100 for non-first sub-tokens
    and special tokens), first_pos (sub-token index of each word's first piece,
    or -1 when the word was truncated away / produced no pieces).
    """
    words = [w for w, _ in sents]
    enc = tokenizer(words, is_split_into_words=True, truncation=True,
                    max_length=max_length, add_special_tokens=True)
    out = []
    n_trunc = 0
    for i, (ws, tags) in enumerate(sents):
        word_ids = enc.word_ids(i)
        labels = [-100] * len(word_ids)
        first_pos = [-1] * len(ws)
        prev = None
        for j, wid in enumerate(word_ids):
            if wid is not None and wid != prev:
                labels[j] = LABEL2ID[tags[wid]]
                first_pos[wid] = j
            prev = wid
        if first_pos and first_pos[-1] == -1 and any(p >= 0 for p in first_pos):
            n_trunc += 1
        out.append({"input_ids": enc["input_ids"][i], "labels": labels,
                    "first_pos": first_pos})
    return out, n_trunc


def split_words(tokenizer, sents):
    """Sub-token ids of every word of every sentence (no special tokens)."""
    enc = tokenizer([w for w, _ in sents], is_split_into_words=True,
                    add_special_tokens=False)
    out = []
    for i, (ws, _) in enumerate(sents):
        pieces: list[list[int]] = [[] for _ in ws]
        for tid, wid in zip(enc["input_ids"][i], enc.word_ids(i)):
            if wid is not None:
                pieces[wid].append(tid)
        out.append(pieces)
    return out


def packs(sizes: list[int], limit: int) -> list[tuple[int, int]]:
    """Consecutive sentences (by their sub-token `sizes`) packed greedily up to `limit`
    sub-tokens, as gist packs sentences at inference (`text::windows::pieces`)."""
    out, start, used = [], 0, 0
    for i, n in enumerate(sizes):
        if i > start and used + n > limit:
            out.append((start, i))
            start, used = i, 0
        used += n
    if start < len(sizes):
        out.append((start, len(sizes)))
    return out


def context_examples(tokenizer, sents, docs, words, pack: int, context: int,
                     max_length: int, rng: random.Random | None):
    """FLERT-style examples: consecutive sentences of one document packed up to `pack`
    sub-tokens are the target (labelled), with whole neighbouring sentences of the same
    document up to `context` sub-tokens on each side as unlabelled context -- what gist
    feeds the model at inference (`text::windows::pieces` with context). With an rng
    (training) each document is packed up to a random limit in [pack/4, pack] with a
    random context in [0, context], so that sentences are seen at varied positions and the
    model also reads well with less context; without, greedily up to `pack` with `context`.

    Returns examples as `encode` does, with `sent` (the target's sentence indices) and
    `first_pos` per target sentence."""
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    budget = max_length - 2
    by_doc: dict[int, list[int]] = {}
    for i, d in enumerate(docs):
        by_doc.setdefault(d, []).append(i)
    sizes = [sum(len(p) for p in w) for w in words]
    out = []
    for idx in by_doc.values():
        limit = pack if rng is None else rng.randint(max(1, pack // 4), pack)
        ctx = context if rng is None else rng.randint(0, context)
        for a, b in packs([sizes[i] for i in idx], limit):
            target = idx[a:b]
            used = sum(sizes[i] for i in target)
            left, right = [], []
            lo, hi, lc, rc = a, b, 0, 0
            # Whole neighbours, nearest first, alternating sides, within `context` each.
            while True:
                grew = False
                if lo > 0 and lc + sizes[idx[lo - 1]] <= ctx and \
                        used + sizes[idx[lo - 1]] <= budget:
                    lo -= 1
                    lc += sizes[idx[lo]]
                    used += sizes[idx[lo]]
                    left.insert(0, idx[lo])
                    grew = True
                if hi < len(idx) and rc + sizes[idx[hi]] <= ctx and \
                        used + sizes[idx[hi]] <= budget:
                    rc += sizes[idx[hi]]
                    used += sizes[idx[hi]]
                    right.append(idx[hi])
                    hi += 1
                    grew = True
                if not grew:
                    break
            ids, labels, first_pos = [cls], [-100], []
            for i in left:
                for p in words[i]:
                    ids.extend(p)
            labels = [-100] * len(ids)
            for i in target:
                fp = []
                for w, p in enumerate(words[i]):
                    if p and len(ids) + len(p) <= budget + 1:
                        fp.append(len(ids))
                        labels.extend([-100] * len(p))
                        labels[len(ids)] = LABEL2ID[sents[i][1][w]]
                        ids.extend(p)
                    else:
                        fp.append(-1)
                first_pos.append(fp)
            for i in right:
                for p in words[i]:
                    ids.extend(p)
            labels.extend([-100] * (len(ids) - len(labels)))
            ids = ids[:budget + 1] + [sep]
            labels = labels[:budget + 1] + [-100]
            out.append({"input_ids": ids, "labels": labels, "sent": target,
                        "first_pos": first_pos})
    return out


def make_batches(examples, batch_size: int, rng: random.Random | None,
                 bucket_factor: int = 50):
    """Length-bucketed batches.

    With an rng (training): shuffle, cut into chunks of batch_size*bucket_factor,
    sort each chunk by length, cut into batches, then shuffle the batch order.
    Without (evaluation): globally length-sorted, in order.
    """
    idx = list(range(len(examples)))
    if rng is None:
        idx.sort(key=lambda i: len(examples[i]["input_ids"]))
        return [idx[k:k + batch_size] for k in range(0, len(idx), batch_size)]
    rng.shuffle(idx)
    chunk = batch_size * bucket_factor
    batches = []
    for c in range(0, len(idx), chunk):
        part = sorted(idx[c:c + chunk], key=lambda i: len(examples[i]["input_ids"]))
        batches.extend(part[k:k + batch_size] for k in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def collate(examples, batch_idx, pad_id: int):
    L = max(len(examples[i]["input_ids"]) for i in batch_idx)
    n = len(batch_idx)
    ids = torch.full((n, L), pad_id, dtype=torch.long)
    mask = torch.zeros((n, L), dtype=torch.long)
    labels = torch.full((n, L), -100, dtype=torch.long)
    for r, i in enumerate(batch_idx):
        e = examples[i]
        k = len(e["input_ids"])
        ids[r, :k] = torch.tensor(e["input_ids"])
        mask[r, :k] = 1
        labels[r, :k] = torch.tensor(e["labels"])
    return ids, mask, labels


# --------------------------------------------------------------------------- eval
# Allowed label transitions of IOB2: I-X only after B-X or I-X.
def _allowed(prev: str, cur: str) -> bool:
    return not cur.startswith("I-") or prev[2:] == cur[2:] and prev != "O"


@torch.no_grad()
def word_log_probs(model, examples, batch_size: int, pad_id: int, n_sents: int):
    """Per sentence, the log-probabilities of each word's first sub-token (context
    examples: only their target sentences)."""
    model.eval()
    out: list = [None] * n_sents
    for b in make_batches(examples, batch_size, None):
        ids, mask, _ = collate(examples, b, pad_id)
        lp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
        for r, i in enumerate(b):
            e = examples[i]
            sents = e.get("sent", [i])
            fps = e["first_pos"] if "sent" in e else [e["first_pos"]]
            for s_i, fp in zip(sents, fps):
                # A word truncated away (or without sub-tokens) is "O".
                rows = torch.full((len(fp), len(LABELS)), -1e4)
                for w, p in enumerate(fp):
                    if p >= 0:
                        rows[w] = lp[r, p]
                    else:
                        rows[w, LABEL2ID["O"]] = 0.0
                out[s_i] = rows
    return out


def decode(lp: torch.Tensor, constrained: bool) -> list[str]:
    """Greedy labels, or the best sequence with only valid IOB2 transitions (Viterbi)."""
    if not constrained:
        return [ID2LABEL[k] for k in lp.argmax(-1).tolist()]
    n = lp.shape[0]
    if n == 0:
        return []
    trans = torch.tensor([[0.0 if _allowed(ID2LABEL[a], ID2LABEL[b]) else -1e9
                           for b in range(len(LABELS))] for a in range(len(LABELS))])
    start = torch.tensor([0.0 if _allowed("O", ID2LABEL[b]) else -1e9
                          for b in range(len(LABELS))])
    score = lp[0] + start
    back = []
    for t in range(1, n):
        cand = score[:, None] + trans + lp[t][None, :]
        score, arg = cand.max(0)
        back.append(arg)
    best = [int(score.argmax())]
    for arg in reversed(back):
        best.append(int(arg[best[-1]]))
    return [ID2LABEL[k] for k in reversed(best)]


def scores(gold, pred) -> dict:
    p, r, f, s = precision_recall_fscore_support(gold, pred, average=None)
    types = sorted({t[2:] for sent in gold for t in sent if t != "O"})
    return {
        "precision": float(precision_score(gold, pred)),
        "recall": float(recall_score(gold, pred)),
        "f1": float(f1_score(gold, pred)),
        "per_label": {t: {"precision": float(p[k]), "recall": float(r[k]),
                          "f1": float(f[k]), "support": int(s[k])}
                      for k, t in enumerate(types)},
        "report": classification_report(gold, pred, digits=4),
    }


def evaluate(model, examples, gold: list[list[str]], batch_size: int, pad_id: int) -> dict:
    """Dev scores with greedy labels (what gist serves), plus the F1 of constrained
    (valid IOB2 only) decoding of the same log-probabilities."""
    lps = word_log_probs(model, examples, batch_size, pad_id, len(gold))
    ev = scores(gold, [decode(lp, False) for lp in lps])
    ev["constrained"] = scores(gold, [decode(lp, True) for lp in lps])
    return ev


# --------------------------------------------------------------------------- main
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", default=str(DEFAULT_DATA / "train.txt"))
    ap.add_argument("--dev", default=str(DEFAULT_DATA / "dev.txt"))
    ap.add_argument("--base", default=str(REPO_ROOT / "models" / "all-MiniLM-L6-v2"))
    ap.add_argument("--out", default=str(HERE / "out" / "conll03-minilm-ner"))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--also-train-on-dev", action="store_true",
                    help="add dev sentences to the training data (ship run; dev scores "
                         "are then no longer held-out)")
    ap.add_argument("--warmup-ratio", type=float, default=0.06)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    ap.add_argument("--max-length", type=int, default=256,
                    help="max sub-tokens per training sentence (incl. [CLS]/[SEP])")
    ap.add_argument("--eval-max-length", type=int, default=512)
    ap.add_argument("--eval-batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--context-tokens", type=int, default=0,
                    help="document context (FLERT-style): whole neighbouring sentences of "
                         "the same document, up to this many sub-tokens on each side, are "
                         "fed unlabelled around the target; 0 trains sentence by sentence")
    ap.add_argument("--pack-tokens", type=int, default=0,
                    help="consecutive sentences of a document packed up to this many "
                         "sub-tokens form one target, as gist packs them at inference "
                         "(0: one sentence per target, or sentence by sentence without "
                         "--context-tokens)")
    ap.add_argument("--init", default=None,
                    help="start from this trained token-classification model folder "
                         "(config.json + model.safetensors, e.g. models/conll03-minilm-ner) "
                         "instead of the base encoder with a new classifier")
    ap.add_argument("--unfreeze-embeddings", action="store_true",
                    help="train the word embeddings too (a measurement lever: the delta then "
                         "holds them, ~23 MB more, and scripts/merge_ner.py does not take it)")
    ap.add_argument("--eval-only", action="store_true",
                    help="score the starting model (--init) on dev and exit")
    ap.add_argument("--average-last", type=int, default=0,
                    help="also evaluate the average of the weights at the end of the last N "
                         "epochs (checkpoint averaging) and export it when its dev F1 is higher")
    return ap.parse_args(argv)


def export(model, base: Path, out: Path, metrics: dict, packing: dict,
           frozen: list[str]) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    model.config.architectures = ["BertForTokenClassification"]
    # How gist feeds the model (src/engine/hf.rs, HfConfig::packing): as it was trained.
    for key, value in packing.items():
        setattr(model.config, key, value)
    model.config._name_or_path = ""  # do not leak the local base path into config.json
    # full fp32 checkpoint for checking (also writes config.json)
    model.save_pretrained(out, safe_serialization=True)
    model.config.to_json_file(out / "config.json")
    shutil.copyfile(base / "vocab.txt", out / "vocab.txt")
    tok_cfg = json.loads((base / "tokenizer_config.json").read_text())
    tok_cfg["do_lower_case"] = True
    tok_cfg.setdefault("tokenizer_class", "BertTokenizer")
    tok_cfg["model_max_length"] = 512
    tok_cfg.pop("name_or_path", None)
    (out / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2) + "\n")
    if (base / "special_tokens_map.json").exists():
        shutil.copyfile(base / "special_tokens_map.json", out / "special_tokens_map.json")

    sd = model.state_dict()
    delta = {k: v.detach().to(torch.float16).contiguous().clone()
             for k, v in sd.items() if k not in frozen}
    note = ("delta over all-MiniLM-L6-v2; add " + ", ".join(frozen)
            + " from the base (scripts/merge_ner.py)") if frozen else \
        "every tensor of the model (embeddings trained; scripts/merge_ner.py does not take it)"
    save_file(delta, str(out / "delta.safetensors"), metadata={"format": "pt", "gist": note})
    size = (out / "delta.safetensors").stat().st_size
    metrics["delta_safetensors_bytes"] = size
    metrics["delta_tensors"] = len(delta)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return {"delta_bytes": size, "delta_tensors": len(delta)}


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.time()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    # Tensors kept as the base's: left out of training, averaging and the delta.
    frozen = [] if args.unfreeze_embeddings else [FROZEN]
    config = dict(vars(args))
    # Paths as the repository knows them (relative to its root), not this machine's.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for key in ("train", "dev", "base", "out", "init"):
        if isinstance(config.get(key), str):
            config[key] = os.path.relpath(os.path.abspath(config[key]), root)
    config.update({
        "labels": LABELS,
        "label_first_subtoken_only": True,
        "frozen": frozen,
        "optimizer": "AdamW (no decay on bias/LayerNorm)",
        "schedule": "linear decay with warmup",
        "batching": "length-bucketed (chunks of 50 batches sorted by length), shuffled batches",
        "torch": torch.__version__, "transformers": transformers.__version__,
        "python": platform.python_version(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
    })
    log("config " + json.dumps(config, sort_keys=True))

    base = Path(args.base)
    tokenizer = BertTokenizerFast.from_pretrained(str(base))
    assert tokenizer("Hello", add_special_tokens=False).input_ids == \
        tokenizer("hello", add_special_tokens=False).input_ids, "tokenizer must lower-case"

    train_docs: list[int] = []
    dev_docs: list[int] = []
    train_s = read_conll(args.train, train_docs)
    dev_s = read_conll(args.dev, dev_docs)
    log(f"read {len(train_s)} train / {len(dev_s)} dev sentences "
        f"({len(set(train_docs))} / {len(set(dev_docs))} documents)")
    if args.also_train_on_dev:
        train_s = train_s + dev_s
        train_docs = train_docs + [d + max(train_docs) + 1 for d in dev_docs]
        log(f"--also-train-on-dev: training on {len(train_s)} sentences "
            "(dev scores below are NOT held-out)")
    dev_gold = [t for _, t in dev_s]
    context = args.context_tokens > 0 or args.pack_tokens > 0
    if context:
        pack = max(args.pack_tokens, 1)
        train_words = split_words(tokenizer, train_s)
        dev_words = split_words(tokenizer, dev_s)
        ex_rng = random.Random(args.seed + 1)

        def train_examples():
            return context_examples(tokenizer, train_s, train_docs, train_words, pack,
                                    args.context_tokens, args.max_length, ex_rng)
        train_ex = train_examples()
        dev_ex = context_examples(tokenizer, dev_s, dev_docs, dev_words, pack,
                                  args.context_tokens, args.eval_max_length, None)
        n_tr = sum(fp.count(-1) for e in train_ex for fp in e["first_pos"])
        n_dv = sum(fp.count(-1) for e in dev_ex for fp in e["first_pos"])
        log(f"document context: targets packed up to {pack} sub-tokens, context up to "
            f"{args.context_tokens} each side; {len(train_ex)} train / {len(dev_ex)} dev "
            f"examples; words truncated away: train {n_tr}, dev {n_dv}")
    else:
        train_ex, n_tr = encode(tokenizer, train_s, args.max_length)
        dev_ex, n_dv = encode(tokenizer, dev_s, args.eval_max_length)
        log(f"truncated train sentences: {n_tr}, truncated dev sentences: {n_dv}")
    lens = sorted(len(e["input_ids"]) for e in train_ex)
    log(f"train sub-token lengths: median {lens[len(lens)//2]}, max {lens[-1]}, "
        f"total {sum(lens)}")

    if args.init:
        # A trained model (gist's merged file mixes F32 and F16 tensors: .float()).
        model = BertForTokenClassification.from_pretrained(args.init).float()
        if [model.config.id2label[i] for i in range(len(LABELS))] != LABELS:
            raise SystemExit(f"{args.init}: labels {model.config.id2label} are not {LABELS}")
        log(f"initialised from the trained model {args.init}")
    else:
        model, info = BertForTokenClassification.from_pretrained(
            str(base), num_labels=len(LABELS), id2label=ID2LABEL, label2id=LABEL2ID,
            output_loading_info=True)
        log(f"loading info: missing={info['missing_keys']} "
            f"unexpected={info['unexpected_keys']} mismatched={info['mismatched_keys']}")
        if sorted(info["missing_keys"]) != ["classifier.bias", "classifier.weight"]:
            raise SystemExit("encoder weights did not load: missing keys "
                             f"{info['missing_keys']}")
    # double-check against the raw base file (names without "bert." prefix)
    from safetensors import safe_open
    sd = model.state_dict()
    n_checked = 0
    with safe_open(str(base / "model.safetensors"), "pt") as f:
        for k in f.keys():
            t = f.get_tensor(k)
            mk = "bert." + k
            if mk not in sd:
                log(f"base tensor {k} has no counterpart in the task model (ignored)")
                continue
            n_checked += 1
            if args.init and mk not in frozen:
                continue  # a trained model differs from the base, except the frozen tensor
            if not torch.equal(sd[mk], t):
                raise SystemExit(f"tensor {mk} differs from the base file")
    log(f"encoder weights verified: {n_checked} tensors against base model.safetensors")

    params = dict(model.named_parameters())
    for name in frozen:
        params[name].requires_grad_(False)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())
    log(f"parameters: {n_all} total, {n_train} trainable; frozen: {frozen or 'none'}")

    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if (n.endswith(".bias") or "LayerNorm" in n) else decay).append(p)
    optim = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    rng = random.Random(args.seed)
    steps_per_epoch = math.ceil(len(train_ex) / args.batch_size)
    total = steps_per_epoch * args.epochs
    warmup = int(round(args.warmup_ratio * total))
    sched = get_linear_schedule_with_warmup(optim, warmup, total)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100,
                                        label_smoothing=args.label_smoothing)
    pad_id = tokenizer.pad_token_id
    log(f"{steps_per_epoch} steps/epoch, {total} steps, {warmup} warm-up steps")

    if args.eval_only:
        ev = evaluate(model, dev_ex, dev_gold, args.eval_batch_size, pad_id)
        log(f"dev entity micro P {ev['precision']:.4f} R {ev['recall']:.4f} F1 {ev['f1']:.4f}"
            f" (constrained decoding F1 {ev['constrained']['f1']:.4f})")
        print(ev["report"], flush=True)
        return 0

    frozen_before = {k: params[k].detach().clone() for k in frozen}
    history = []
    avg_sum, avg_n = None, 0
    step = 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        t_ep = time.time()
        run_loss, run_n = 0.0, 0
        if context and epoch > 1:
            train_ex = train_examples()  # new random packing each epoch
        for b in make_batches(train_ex, args.batch_size, rng):
            ids, mask, labels = collate(train_ex, b, pad_id)
            logits = model(input_ids=ids, attention_mask=mask).logits
            loss = loss_fn(logits.view(-1, len(LABELS)), labels.view(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optim.step()
            sched.step()
            optim.zero_grad(set_to_none=True)
            step += 1
            run_loss += loss.item()
            run_n += 1
            if step % args.log_every == 0:
                log(f"epoch {epoch} step {step}/{total} loss {run_loss / run_n:.4f} "
                    f"lr {sched.get_last_lr()[0]:.2e} ({time.time() - t_ep:.0f}s into epoch)")
                run_loss, run_n = 0.0, 0
        train_s_ep = time.time() - t_ep
        t_ev = time.time()
        ev = evaluate(model, dev_ex, dev_gold, args.eval_batch_size, pad_id)
        log(f"epoch {epoch} done: train {train_s_ep:.0f}s, dev eval {time.time() - t_ev:.0f}s; "
            f"dev entity micro P {ev['precision']:.4f} R {ev['recall']:.4f} F1 {ev['f1']:.4f}"
            f" (constrained decoding F1 {ev['constrained']['f1']:.4f})")
        print(ev["report"], flush=True)
        history.append({"epoch": epoch, "train_seconds": round(train_s_ep, 1),
                        "constrained_f1": ev["constrained"]["f1"],
                        **{k: ev[k] for k in ("precision", "recall", "f1", "per_label")}})
        if args.average_last and epoch > args.epochs - args.average_last:
            # The frozen embeddings are left out: averaging identical floats need not give
            # them back bit for bit, and the export relies on them being the base's.
            sd_now = {k: v.detach().clone().double() for k, v in model.state_dict().items()
                      if k not in frozen}
            if avg_sum is None:
                avg_sum = sd_now
            else:
                for k in avg_sum:
                    avg_sum[k] += sd_now[k]
            avg_n += 1

    if avg_n > 1:
        last_sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict({k: (v / avg_n).to(last_sd[k].dtype) for k, v in avg_sum.items()},
                              strict=False)
        ev = evaluate(model, dev_ex, dev_gold, args.eval_batch_size, pad_id)
        log(f"average of the last {avg_n} epochs: dev entity micro P {ev['precision']:.4f} "
            f"R {ev['recall']:.4f} F1 {ev['f1']:.4f} "
            f"(constrained decoding F1 {ev['constrained']['f1']:.4f})")
        print(ev["report"], flush=True)
        averaged = {"epoch": f"average of last {avg_n}",
                    "constrained_f1": ev["constrained"]["f1"],
                    **{k: ev[k] for k in ("precision", "recall", "f1", "per_label")}}
        if ev["f1"] > history[-1]["f1"]:
            log("exporting the averaged weights (higher dev F1)")
            history.append(averaged)
        else:
            log("exporting the last epoch's weights (averaging did not help on dev)")
            model.load_state_dict(last_sd)
            history.append(averaged)
            history.append(dict(history[-2]))

    assert all(torch.equal(frozen_before[k], params[k]) for k in frozen), \
        "frozen tensors changed"
    wall = time.time() - t_start
    final = history[-1]
    metrics = {
        "dev": {k: final[k] for k in ("precision", "recall", "f1", "per_label")},
        "dev_is_held_out": not args.also_train_on_dev,
        "epochs": args.epochs,
        "history": history,
        "wall_seconds": round(wall, 1),
        "config": config,
    }
    packing = ({"gist_pack_tokens": args.pack_tokens or 1,
                "gist_context_tokens": args.context_tokens} if context else {})
    res = export(model, base, Path(args.out), metrics, packing, frozen)
    log(f"exported to {args.out}: delta.safetensors {res['delta_bytes'] / 1e6:.2f} MB "
        f"({res['delta_tensors']} tensors); wall time {wall:.0f}s before export, "
        f"export {time.time() - t_start - wall:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
