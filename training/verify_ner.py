#!/usr/bin/env python3
"""Check a merged NER model against the fp32 model train_ner.py saved.

    ~/.cache/gist/train-venv/bin/python training/verify_ner.py \\
        --trained training/out/conll03-minilm-ner \\
        --merged  training/out/merged/model.safetensors \\
        --text    ../shared/examples/khan-li-call.txt

1. Every tensor of the merged file equals the trained fp32 tensor after fp16
   rounding (the frozen word embeddings bit-for-bit in F32), same key set.
2. The merged model (a folder with config.json, vocab.txt, tokenizer_config.json
   and the merged model.safetensors) scores the same on dev as the fp32 model.
3. Optional: entities found in --text by the transformers pipeline
   ("token-classification", aggregation_strategy="first"), paragraph by paragraph.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from safetensors.torch import load_file
from transformers import (AutoTokenizer, BertForTokenClassification,
                          BertTokenizerFast, pipeline)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_ner as T  # noqa: E402


def compare_tensors(fp32_path: Path, merged_path: Path) -> dict:
    a = load_file(str(fp32_path))
    b = load_file(str(merged_path))
    if set(a) != set(b):
        raise SystemExit(f"key sets differ: only fp32 {sorted(set(a) - set(b))}, "
                         f"only merged {sorted(set(b) - set(a))}")
    worst, worst_name, n_exact_fp16 = 0.0, None, 0
    dtypes = {}
    for k in sorted(a):
        ta, tb = a[k], b[k]
        dtypes[str(tb.dtype)] = dtypes.get(str(tb.dtype), 0) + 1
        if ta.shape != tb.shape:
            raise SystemExit(f"{k}: shape {tuple(ta.shape)} vs {tuple(tb.shape)}")
        if k == T.FROZEN:
            if tb.dtype != torch.float32 or not torch.equal(ta, tb):
                raise SystemExit(f"{k}: frozen embeddings not bit-identical F32")
            continue
        if tb.dtype != torch.float16:
            raise SystemExit(f"{k}: expected F16, got {tb.dtype}")
        if torch.equal(ta.to(torch.float16), tb):
            n_exact_fp16 += 1
        else:
            raise SystemExit(f"{k}: differs from fp16(fp32 tensor)")
        d = (ta - tb.float()).abs().max().item()
        rel = d / max(ta.abs().max().item(), 1e-12)
        if rel > worst:
            worst, worst_name = rel, k
    return {"tensors": len(a), "dtypes": dtypes, "equal_to_fp16_rounding": n_exact_fp16,
            "frozen_bit_identical": True, "max_rel_diff": worst, "max_rel_diff_tensor": worst_name}


def dev_f1(model_dir: Path, dev: str) -> dict:
    tok = BertTokenizerFast.from_pretrained(str(model_dir))
    model, info = BertForTokenClassification.from_pretrained(
        str(model_dir), output_loading_info=True, torch_dtype=torch.float32)
    if info["missing_keys"] or info["mismatched_keys"]:
        raise SystemExit(f"{model_dir}: missing {info['missing_keys']} "
                         f"mismatched {info['mismatched_keys']}")
    model.float()  # see entities(): the merged file loads with mixed dtypes
    sents = T.read_conll(dev)
    ex, _ = T.encode(tok, sents, 512)
    ev = T.evaluate(model, ex, [t for _, t in sents], 64, tok.pad_token_id)
    return ev


def entities(model_dir: Path, text_path: Path) -> list[dict]:
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    # transformers 4.44 keeps the file's per-tensor dtypes (F16 + F32 mixed) even with
    # torch_dtype=float32, and CPU LayerNorm then fails on mixed dtypes: cast explicitly.
    model = BertForTokenClassification.from_pretrained(str(model_dir)).float()
    nlp = pipeline("token-classification", model=model, tokenizer=tok,
                   aggregation_strategy="first", device=-1)
    text = text_path.read_text(encoding="utf-8")
    found = []
    pos = 0
    for para in text.split("\n"):
        start = text.index(para, pos) if para else pos
        pos = start + len(para)
        if not para.strip():
            continue
        for e in nlp(para):
            found.append({"text": text[start + e["start"]:start + e["end"]],
                          "label": e["entity_group"], "score": round(float(e["score"]), 3),
                          "start": start + e["start"], "end": start + e["end"]})
    return found


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trained", required=True, help="train_ner.py --out folder")
    ap.add_argument("--merged", required=True, help="merged model.safetensors")
    ap.add_argument("--dev", default=str(T.DEFAULT_DATA / "dev.txt"))
    ap.add_argument("--text", help="plain-text file to run the pipeline on")
    ap.add_argument("--json-out", help="write the results here as JSON")
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    trained = Path(a.trained)
    res: dict = {}

    res["tensors"] = compare_tensors(trained / "model.safetensors", Path(a.merged))
    print("tensor check:", json.dumps(res["tensors"]), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        md = Path(tmp)
        for f in ("config.json", "vocab.txt", "tokenizer_config.json"):
            shutil.copyfile(trained / f, md / f)
        shutil.copyfile(a.merged, md / "model.safetensors")
        ev_m = dev_f1(md, a.dev)
        ev_f = dev_f1(trained, a.dev)
        res["dev_merged"] = {k: ev_m[k] for k in ("precision", "recall", "f1", "per_label")}
        res["dev_fp32"] = {k: ev_f[k] for k in ("precision", "recall", "f1", "per_label")}
        res["dev_f1_abs_diff"] = abs(ev_m["f1"] - ev_f["f1"])
        print(f"dev F1 merged {ev_m['f1']:.4f} (P {ev_m['precision']:.4f} R {ev_m['recall']:.4f})"
              f" vs fp32 {ev_f['f1']:.4f} (P {ev_f['precision']:.4f} R {ev_f['recall']:.4f});"
              f" |diff| {res['dev_f1_abs_diff']:.4f}", flush=True)
        print(ev_m["report"], flush=True)
        if a.text:
            ents = entities(md, Path(a.text))
            res["entities"] = ents
            print(f"entities in {a.text} (merged model, aggregation_strategy=first):")
            for e in ents:
                print(f"  {e['label']:5s} {e['text']!r:40s} {e['score']:.3f} [{e['start']}:{e['end']}]")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
