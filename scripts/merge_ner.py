#!/usr/bin/env python3
"""Rebuild gist's NER model.safetensors from a delta and the all-MiniLM-L6-v2 base.

Standard library only (runs with a bare python3):

    python3 merge_ner.py --delta DIR/delta.safetensors \\
        --base BASE/model.safetensors --out OUT/model.safetensors

The delta (written by train_ner.py) holds every tensor of the fine-tuned
BertForTokenClassification except ``bert.embeddings.word_embeddings.weight``,
which was frozen during training and is therefore byte-identical to the base's
``embeddings.word_embeddings.weight``. The output holds that base tensor
unchanged (F32) under the task-model name, plus all delta tensors unchanged
(F16). Mixed dtypes are fine: the loaders cast.

Safetensors layout: u64 little-endian header length N, N bytes of JSON header
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
then the data buffer (offsets relative to its start).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys

BASE_NAME = "embeddings.word_embeddings.weight"
TARGET_NAME = "bert.embeddings.word_embeddings.weight"
DTYPE_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4,
              "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
COPY_CHUNK = 1 << 20


def read_header(f) -> tuple[dict, int]:
    """Return (header dict, absolute offset of the data buffer)."""
    raw = f.read(8)
    if len(raw) != 8:
        raise ValueError("file too short for a safetensors header")
    (n,) = struct.unpack("<Q", raw)
    if n > 100 * 1024 * 1024:
        raise ValueError(f"implausible safetensors header length {n}")
    header = json.loads(f.read(n).decode("utf-8"))
    return header, 8 + n


def check_entry(name: str, info: dict, buf_len: int) -> int:
    dtype, shape, (b, e) = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in DTYPE_SIZE:
        raise ValueError(f"{name}: unsupported dtype {dtype}")
    n = 1
    for d in shape:
        n *= d
    if e - b != n * DTYPE_SIZE[dtype] or b < 0 or e > buf_len:
        raise ValueError(f"{name}: data_offsets {b}..{e} do not fit dtype {dtype} "
                         f"shape {shape} (buffer {buf_len} bytes)")
    return e - b


def copy_range(src, dst, start: int, length: int) -> None:
    src.seek(start)
    while length:
        chunk = src.read(min(COPY_CHUNK, length))
        if not chunk:
            raise ValueError("unexpected end of file")
        dst.write(chunk)
        length -= len(chunk)


def merge(delta_path: str, base_path: str, out_path: str) -> dict:
    with open(delta_path, "rb") as fd, open(base_path, "rb") as fb:
        dh, d_start = read_header(fd)
        bh, b_start = read_header(fb)
        d_len = os.fstat(fd.fileno()).st_size - d_start
        b_len = os.fstat(fb.fileno()).st_size - b_start
        dh.pop("__metadata__", None)
        bh.pop("__metadata__", None)

        if BASE_NAME not in bh:
            raise SystemExit(f"{base_path}: no tensor {BASE_NAME!r}")
        if TARGET_NAME in dh:
            raise SystemExit(f"{delta_path}: already contains {TARGET_NAME!r}")
        base_info = bh[BASE_NAME]
        check_entry(BASE_NAME, base_info, b_len)
        for name, info in dh.items():
            check_entry(name, info, d_len)
        # sanity: the delta's classifier/encoder must match the base's shapes
        for name, info in dh.items():
            bn = name[len("bert."):] if name.startswith("bert.") else None
            if bn in bh and bh[bn]["shape"] != info["shape"]:
                raise SystemExit(f"shape mismatch for {name}: delta {info['shape']} "
                                 f"vs base {bh[bn]['shape']}")
        emb_shape = base_info["shape"]
        for name in ("bert.embeddings.position_embeddings.weight",):
            if name in dh and dh[name]["shape"][1] != emb_shape[1]:
                raise SystemExit(f"hidden size mismatch between delta and base ({name})")

        # plan the output: sources in order, offsets contiguous
        plan = [(TARGET_NAME, fb, b_start, base_info)]
        plan += [(n, fd, d_start, dh[n])
                 for n in sorted(dh, key=lambda k: dh[k]["data_offsets"][0])]
        header: dict = {}
        off = 0
        for name, _, _, info in plan:
            size = info["data_offsets"][1] - info["data_offsets"][0]
            header[name] = {"dtype": info["dtype"], "shape": info["shape"],
                            "data_offsets": [off, off + size]}
            off += size
        meta = {"format": "pt"}
        meta["gist_merged_from"] = "delta.safetensors + all-MiniLM-L6-v2 word embeddings"
        header["__metadata__"] = meta

        hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
        pad = (-(8 + len(hjson))) % 8
        hjson += b" " * pad

        tmp = out_path + ".tmp"
        os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
        with open(tmp, "wb") as fo:
            fo.write(struct.pack("<Q", len(hjson)))
            fo.write(hjson)
            for name, src, start, info in plan:
                b, e = info["data_offsets"]
                copy_range(src, fo, start + b, e - b)
        os.replace(tmp, out_path)
    return {"tensors": len(plan), "bytes": os.path.getsize(out_path),
            "header_bytes": len(hjson)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--delta", required=True, help="delta.safetensors from train_ner.py")
    ap.add_argument("--base", required=True, help="all-MiniLM-L6-v2/model.safetensors")
    ap.add_argument("--out", required=True, help="output model.safetensors")
    a = ap.parse_args(argv)
    r = merge(a.delta, a.base, a.out)
    print(f"wrote {a.out}: {r['tensors']} tensors, {r['bytes'] / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
