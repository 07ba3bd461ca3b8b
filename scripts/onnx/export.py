#!/usr/bin/env python3
"""Export a Hugging Face model folder to ONNX for gist's ONNX Runtime engine.

    python export.py --model DIR --task ner|embed --out DIR [--int8] [--check]

Writes into --out:
  model.onnx       fp32, inputs input_ids and attention_mask ([batch, sequence], int64,
                   both axes dynamic); output `logits` [batch, sequence, labels] for --task ner,
                   `last_hidden_state` [batch, sequence, hidden] for --task embed (gist pools
                   it as the folder's 1_Pooling/config.json says, so the file stays the plain
                   transformer export that optimum and sentence-transformers write too).
  model.int8.onnx  with --int8: dynamic int8 quantization of the weight MatMuls by ONNX
                   Runtime's quantization tools, per channel, leaving the sensitive ones in
                   fp32 (see INT8 below and docs/onnx.md for the measurements).
  model.onnx.data  the embedding tables (initializers only Gather reads), outside the
                   protobuf as ONNX external data, 64 KiB-aligned; model.onnx and model.int8.onnx
                   both point into it (quantization leaves Gather's tables in fp32, byte for
                   byte). ONNX Runtime maps external data into memory instead of copying it, so
                   only the rows of tokens a text uses are ever read in: with the default
                   models `gist serve` holds about 85 MB less (docs/onnx.md, "Memory").
  tokenizer.json   the fast tokenizer (Hugging Face tokenizers) for the folder's vocabulary.
  export.json      what was done: versions, options, the nodes left in fp32, the check.

Runs in the exporter venv scripts/setup.sh builds (torch 2.4.0 CPU, transformers 4.44.2,
onnx, onnxruntime 1.32.0); torch.onnx.export with the TorchScript exporter, opset 17.
The NER model's safetensors mixes fp16 and fp32 tensors: it is loaded as float32.
"""
import argparse
import json
import os
import re
import sys
import time

import torch

TASKS = ("ner", "embed")

# INT8: the default selection. Dynamic quantization (weights int8 per output channel with
# reduced range, activations quantized per batch at run time) of every MatMul with a
# constant weight, except these, which stay fp32:
#   - MatMuls of two activations (attention scores Q·Kᵀ and probabilities·V): both sides
#     would be quantized on the fly, which costs accuracy and saves little;
#   - the first and last layers' FFN output projection (output/dense), the two most
#     sensitive projections in the measurements (docs/onnx.md);
#   - the classifier.
DEFAULT_KEEP = [r"layer\.0/output/dense/", r"layer\.{last}/output/dense/", r"classifier"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="Hugging Face model folder")
    ap.add_argument("--task", required=True, choices=TASKS,
                    help="ner: token classification (logits); embed: sentence encoder (hidden states)")
    ap.add_argument("--out", required=True, help="folder for model.onnx, tokenizer.json, ...")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--lower-case", choices=["true", "false"],
                    help="override the tokenizer's do_lower_case (models.toml lower_case)")
    ap.add_argument("--int8", action="store_true", help="also write model.int8.onnx")
    ap.add_argument("--keep-fp32", action="append", metavar="REGEX",
                    help="node-name patterns left in fp32 by --int8 ({last} = the last layer's "
                         "index); repeatable; default: " + " ".join(DEFAULT_KEEP))
    ap.add_argument("--no-per-channel", dest="per_channel", action="store_false",
                    help="one scale per weight tensor instead of one per output channel")
    ap.add_argument("--reduce-range", dest="reduce_range", action="store_true", default=True,
                    help="7-bit weights (the default: on CoNLL dev F1 91.05 against 90.65 "
                         "without, fp32 91.12; it also avoids u8s8 saturation on CPUs without VNNI)")
    ap.add_argument("--no-reduce-range", dest="reduce_range", action="store_false",
                    help="full 8-bit weights")
    ap.add_argument("--quantize-activation-matmuls", action="store_true",
                    help="also quantize MatMuls of two activations (attention)")
    ap.add_argument("--optimize", action="store_true",
                    help="fuse the graph with onnxruntime.transformers' BERT optimizer (Attention, "
                         "SkipLayerNormalization, BiasGelu) before quantizing, and quantize the "
                         "fused Attention too (QAttention)")
    ap.add_argument("--quantize-only", action="store_true",
                    help="skip the export: quantize the model.onnx already in --out again "
                         "(to compare quantization settings)")
    ap.add_argument("--check", action="store_true",
                    help="compare ONNX Runtime's output with torch's on sample texts")
    return ap.parse_args(argv)


def fresh(path):
    """`path`, removed first: a prepared model folder hard-links its files to the cache,
    and writing through such a link would change the cached copy."""
    if os.path.lexists(path):
        os.remove(path)
    return path


def load(args):
    from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification, AutoTokenizer

    kwargs = {}
    if args.lower_case is not None:
        kwargs["do_lower_case"] = args.lower_case == "true"
    tokenizer = AutoTokenizer.from_pretrained(args.model, use_fast=True, **kwargs)
    if not tokenizer.is_fast:
        raise SystemExit(f"{args.model}: no fast tokenizer could be made for this vocabulary")
    config = AutoConfig.from_pretrained(args.model)
    cls = AutoModelForTokenClassification if args.task == "ner" else AutoModel
    # eager attention: the graph ONNX Runtime's attention fusion recognises; float32: the
    # NER file keeps fp16 tensors beside fp32 ones, which CPU kernels reject mixed.
    kwargs = dict(torch_dtype=torch.float32, attn_implementation="eager")
    weights = os.path.join(args.model, "model.safetensors")
    if os.path.exists(weights):
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(weights, "pt") as f:
            metadata = f.metadata()
        if not (metadata or {}).get("format"):
            # Files written by other tools than transformers (tch's, in gist's tests) carry
            # no {"format": "pt"} metadata, which from_pretrained requires of a file.
            kwargs["state_dict"] = load_file(weights)
            model = cls.from_pretrained(None, config=config, **kwargs).float().eval()
            return config, tokenizer, model
    model = cls.from_pretrained(args.model, **kwargs).float().eval()
    return config, tokenizer, model


class HiddenStates(torch.nn.Module):
    """The encoder's last hidden state only (no pooler output)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class Logits(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


SAMPLES = [
    "Pakistan Prime Minister Imran Khan and Chinese Premier Li Keqiang held talks on Thursday.",
    "The two leaders met.",
    "“Khan” met 李克强 in Islamabad; the café was closed.",
]


def export(args, tokenizer, model):
    # eval(): a new wrapper module is in training mode, and torch.onnx.export restores the
    # mode it found (recursively), which would switch the model's dropout on afterwards.
    wrapper = (Logits(model) if args.task == "ner" else HiddenStates(model)).eval()
    output = "logits" if args.task == "ner" else "last_hidden_state"
    sample = tokenizer(SAMPLES[:2], padding=True, return_tensors="pt")
    path = fresh(os.path.join(args.out, "model.onnx"))
    dynamic = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        torch.onnx.export(
            wrapper, (sample["input_ids"], sample["attention_mask"]), path,
            input_names=["input_ids", "attention_mask"], output_names=[output],
            dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, output: dynamic},
            opset_version=args.opset, do_constant_folding=True)
    return path, wrapper


def quantize(args, fp32_path, config):
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    num_layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers", 1)
    op_types = ["MatMul"]
    if args.optimize:
        from onnxruntime.transformers.optimizer import optimize_model

        fused = optimize_model(fp32_path, model_type="bert",
                               num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size, opt_level=1)
        fp32_path = os.path.join(args.out, "model.fused.tmp.onnx")
        fused.save_model_to_file(fp32_path)
        op_types = ["MatMul", "Attention"]
    graph = onnx.load(fp32_path).graph
    constants = {i.name for i in graph.initializer}
    # A weight may reach the MatMul through a Transpose of an initializer folded already;
    # anything not a plain initializer counts as an activation.
    keep = [p.replace("{last}", str(num_layers - 1)) for p in (args.keep_fp32 or DEFAULT_KEEP)]
    matmuls = [n for n in graph.node if n.op_type == "MatMul"]
    excluded, quantized = [], []
    for node in matmuls:
        activation_pair = not any(i in constants for i in node.input)
        if (activation_pair and not args.quantize_activation_matmuls) or \
                any(re.search(p, node.name) for p in keep):
            excluded.append(node.name)
        else:
            quantized.append(node.name)
    path = fresh(os.path.join(args.out, "model.int8.onnx"))
    quantize_dynamic(fp32_path, path, weight_type=QuantType.QInt8, per_channel=args.per_channel,
                     reduce_range=args.reduce_range, op_types_to_quantize=op_types,
                     nodes_to_exclude=excluded,
                     # The fused graph's contrib operators defeat shape inference: their
                     # outputs are float.
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    if args.optimize:
        os.remove(fp32_path)
    return path, {"per_channel": args.per_channel, "reduce_range": args.reduce_range,
                  "optimized": args.optimize,
                  "keep_fp32_patterns": keep, "quantized": len(quantized),
                  "left_fp32": excluded}


# External data: ONNX Runtime maps a file's region into memory when its offset is a multiple
# of the allocation granularity (the page size on Linux; 64 KiB on Windows, the larger).
DATA = "model.onnx.data"
ALIGN = 1 << 16


# Where an embedding table is read: a Gather's data, or the word, position and segment
# embeddings of ONNX Runtime's fused EmbedLayerNormalization (--optimize).
TABLE_INPUTS = {"Gather": {0}, "EmbedLayerNormalization": {2, 3, 4}}


def embedding_tables(graph):
    """The 2-D initializers read only as embedding tables."""
    uses = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            uses.setdefault(name, []).append(i in TABLE_INPUTS.get(node.op_type, ()))
    return [t for t in graph.initializer
            if len(t.dims) == 2 and t.HasField("raw_data") and uses.get(t.name)
            and all(uses[t.name])]


def externalize(path, out, written=None):
    """Move `path`'s embedding tables into `out`/model.onnx.data (ONNX external data) and
    rewrite `path` to point at them. `written` (name -> (offset, length, bytes)) holds the
    tables the data file already has: an identical table is pointed at, not written again
    (the int8 file shares the fp32 file's tables). Returns the updated `written`."""
    import onnx
    from onnx.external_data_helper import set_external_data

    model = onnx.load(path)
    written = dict(written or {})
    data_path = os.path.join(out, DATA)
    tables = embedding_tables(model.graph)
    new = [t for t in tables if t.name not in written or written[t.name][2] != t.raw_data]
    if not written:
        # A new file (never written through a link to the cache), even when empty.
        open(fresh(data_path), "wb").close()
    if new:
        with open(data_path, "ab") as f:
            for table in new:
                offset = -(-f.tell() // ALIGN) * ALIGN
                f.write(b"\0" * (offset - f.tell()))
                f.write(table.raw_data)
                written[table.name] = (offset, len(table.raw_data), table.raw_data)
    for table in tables:
        offset, length, _ = written[table.name]
        set_external_data(table, location=DATA, offset=offset, length=length)
        table.ClearField("raw_data")
    onnx.save(model, fresh(path))
    return written


def tables_of(path, out):
    """The tables `path` (already externalized) keeps in `out`/model.onnx.data, as
    `externalize` returns them."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    written = {}
    if not os.path.exists(os.path.join(out, DATA)):  # an fp32 file from before (self-contained)
        return written
    with open(os.path.join(out, DATA), "rb") as f:
        for table in model.graph.initializer:
            info = {e.key: e.value for e in table.external_data}
            if info.get("location") == DATA:
                offset, length = int(info.get("offset", 0)), int(info["length"])
                f.seek(offset)
                written[table.name] = (offset, length, f.read(length))
    return written


def check(args, tokenizer, wrapper, paths):
    """Largest absolute difference between torch and ONNX Runtime on the samples."""
    import numpy as np
    import onnxruntime as ort

    enc = tokenizer(SAMPLES, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = wrapper(enc["input_ids"], enc["attention_mask"]).numpy()
    mask = enc["attention_mask"].numpy().astype(bool)
    out = {}
    for name, path in paths.items():
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        got = session.run(None, {"input_ids": enc["input_ids"].numpy(),
                                 "attention_mask": enc["attention_mask"].numpy()})[0]
        result = {"max_abs_diff": float(np.abs(got - want)[mask].max())}
        if args.task == "ner":
            result["labels_equal"] = float((got.argmax(-1) == want.argmax(-1))[mask].mean())
        out[name] = result
    return out


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    os.makedirs(args.out, exist_ok=True)
    import onnx
    import onnxruntime
    import transformers

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    config, tokenizer, model = load(args)
    if args.quantize_only:
        fp32 = os.path.join(args.out, "model.onnx")
        wrapper = (Logits(model) if args.task == "ner" else HiddenStates(model)).eval()
    else:
        tokenizer.backend_tokenizer.save(fresh(os.path.join(args.out, "tokenizer.json")))
        fp32, wrapper = export(args, tokenizer, model)
    paths = {"fp32": fp32}
    record = {
        "task": args.task, "source": os.path.abspath(args.model), "opset": args.opset,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        "files": {"fp32": "model.onnx"},
    }
    if args.int8:
        int8, recipe = quantize(args, fp32, config)
        paths["int8"] = int8
        record["files"]["int8"] = "model.int8.onnx"
        record["int8"] = recipe
    # After quantizing (its tools read and write whole protobufs): the tables out of both.
    written = None
    if not args.quantize_only:
        written = externalize(fp32, args.out)
    if "int8" in paths:
        if written is None:  # --quantize-only: the fp32 file's tables are in the data file
            written = tables_of(fp32, args.out)
        written = externalize(paths["int8"], args.out, written)
    record["files"]["data"] = DATA
    record["external_tables"] = sorted(written or {})
    if args.check:
        record["check"] = check(args, tokenizer, wrapper, paths)
    record["seconds"] = round(time.time() - started, 1)
    with open(os.path.join(args.out, "export.int8.json" if args.quantize_only
                           else "export.json"), "w") as f:
        json.dump(record, f, indent=1)
    summary = {k: v for k, v in record.items() if k not in ("int8",)}
    if "int8" in record:
        summary["int8_quantized"] = record["int8"]["quantized"]
        summary["int8_left_fp32"] = len(record["int8"]["left_fp32"])
    print(json.dumps(summary), file=sys.stderr)


if __name__ == "__main__":
    main()
