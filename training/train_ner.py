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
def read_conll(path: str | Path) -> list[tuple[list[str], list[str]]]:
    """Read `TOKEN POS CHUNK NER` lines; blank line ends a sentence; skip document separators."""
    sents: list[tuple[list[str], list[str]]] = []
    toks: list[str] = []
    tags: list[str] = []

    def flush():
        if toks:
            sents.append((list(toks), list(tags)))
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
@torch.no_grad()
def predict_tags(model, examples, batch_size: int, pad_id: int) -> list[list[str]]:
    """Word-level tag predictions from the first sub-token of each word."""
    model.eval()
    preds: list[list[str] | None] = [None] * len(examples)
    for b in make_batches(examples, batch_size, None):
        ids, mask, _ = collate(examples, b, pad_id)
        logits = model(input_ids=ids, attention_mask=mask).logits
        am = logits.argmax(-1).tolist()
        for r, i in enumerate(b):
            fp = examples[i]["first_pos"]
            preds[i] = [ID2LABEL[am[r][p]] if p >= 0 else "O" for p in fp]
    return preds  # type: ignore[return-value]


def evaluate(model, examples, gold: list[list[str]], batch_size: int, pad_id: int) -> dict:
    pred = predict_tags(model, examples, batch_size, pad_id)
    p, r, f, s = precision_recall_fscore_support(gold, pred, average=None)
    # label order of seqeval's per-type arrays = sorted entity types
    types = sorted({t[2:] for sent in gold for t in sent if t != "O"})
    per_label = {t: {"precision": float(p[k]), "recall": float(r[k]),
                     "f1": float(f[k]), "support": int(s[k])}
                 for k, t in enumerate(types)}
    return {
        "precision": float(precision_score(gold, pred)),
        "recall": float(recall_score(gold, pred)),
        "f1": float(f1_score(gold, pred)),
        "per_label": per_label,
        "report": classification_report(gold, pred, digits=4),
    }


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
    ap.add_argument("--average-last", type=int, default=0,
                    help="also evaluate the average of the weights at the end of the last N "
                         "epochs (checkpoint averaging) and export it when its dev F1 is higher")
    return ap.parse_args(argv)


def export(model, base: Path, out: Path, metrics: dict) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    model.config.architectures = ["BertForTokenClassification"]
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
             for k, v in sd.items() if k != FROZEN}
    save_file(delta, str(out / "delta.safetensors"),
              metadata={"format": "pt",
                        "gist": "delta over all-MiniLM-L6-v2; add "
                                "bert.embeddings.word_embeddings.weight from the base "
                                "(scripts/merge_ner.py)"})
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

    config = dict(vars(args))
    config.update({
        "labels": LABELS,
        "label_first_subtoken_only": True,
        "frozen": [FROZEN],
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

    train_s = read_conll(args.train)
    dev_s = read_conll(args.dev)
    log(f"read {len(train_s)} train / {len(dev_s)} dev sentences")
    if args.also_train_on_dev:
        train_s = train_s + dev_s
        log(f"--also-train-on-dev: training on {len(train_s)} sentences "
            "(dev scores below are NOT held-out)")
    train_ex, n_tr = encode(tokenizer, train_s, args.max_length)
    dev_ex, n_dv = encode(tokenizer, dev_s, args.eval_max_length)
    dev_gold = [t for _, t in dev_s]
    lens = sorted(len(e["input_ids"]) for e in train_ex)
    log(f"train sub-token lengths: median {lens[len(lens)//2]}, max {lens[-1]}; "
        f"truncated train sentences: {n_tr}, truncated dev sentences: {n_dv}")

    model, info = BertForTokenClassification.from_pretrained(
        str(base), num_labels=len(LABELS), id2label=ID2LABEL, label2id=LABEL2ID,
        output_loading_info=True)
    log(f"loading info: missing={info['missing_keys']} unexpected={info['unexpected_keys']} "
        f"mismatched={info['mismatched_keys']}")
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
            if not torch.equal(sd[mk], t):
                raise SystemExit(f"tensor {mk} differs from the base file")
    log(f"encoder weights verified: {n_checked} tensors equal to base model.safetensors")

    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())
    log(f"parameters: {n_all} total, {n_train} trainable ({FROZEN} frozen)")

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

    frozen_before = model.bert.embeddings.word_embeddings.weight.detach().clone()
    history = []
    avg_sum, avg_n = None, 0
    step = 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        t_ep = time.time()
        run_loss, run_n = 0.0, 0
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
            f"dev entity micro P {ev['precision']:.4f} R {ev['recall']:.4f} F1 {ev['f1']:.4f}")
        print(ev["report"], flush=True)
        history.append({"epoch": epoch, "train_seconds": round(train_s_ep, 1),
                        **{k: ev[k] for k in ("precision", "recall", "f1", "per_label")}})
        if args.average_last and epoch > args.epochs - args.average_last:
            # The frozen embeddings are left out: averaging identical floats need not give
            # them back bit for bit, and the export relies on them being the base's.
            sd_now = {k: v.detach().clone().double() for k, v in model.state_dict().items()
                      if k != FROZEN}
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
            f"R {ev['recall']:.4f} F1 {ev['f1']:.4f}")
        print(ev["report"], flush=True)
        averaged = {"epoch": f"average of last {avg_n}",
                    **{k: ev[k] for k in ("precision", "recall", "f1", "per_label")}}
        if ev["f1"] > history[-1]["f1"]:
            log("exporting the averaged weights (higher dev F1)")
            history.append(averaged)
        else:
            log("exporting the last epoch's weights (averaging did not help on dev)")
            model.load_state_dict(last_sd)
            history.append(averaged)
            history.append(dict(history[-2]))

    assert torch.equal(frozen_before, model.bert.embeddings.word_embeddings.weight), \
        "frozen word embeddings changed"
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
    res = export(model, base, Path(args.out), metrics)
    log(f"exported to {args.out}: delta.safetensors {res['delta_bytes'] / 1e6:.2f} MB "
        f"({res['delta_tensors']} tensors); wall time {wall:.0f}s before export, "
        f"export {time.time() - t_start - wall:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
