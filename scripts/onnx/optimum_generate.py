#!/usr/bin/env python3
"""Abstractive generation on ONNX Runtime the way a speed-minded user would run it:
Hugging Face Optimum's ORTModelForSeq2SeqLM (encoder, and a decoder with past keys and
values, exported by Optimum), against `transformers`' generate on the same weights, in one
process. It answers whether gist's summarizers should move from rust-bert to ONNX Runtime
(docs/onnx.md, "Generation"); gist's own side is `examples/bench_generate.rs` on the same
folder, run right after.

    python optimum_generate.py --model DIR --text input.txt --beams 1,4 --length 60 --threads 2

DIR is a folder from `bench/peers/generate_peer.py --save-random` (random weights at
distilbart-cnn-6-6's shape, byte-level vocabulary) and the input is tokenized with it, as
the benchmark's generation part does, so every side reads the same ids. The work is fixed as
there: min_length = max_length = --length, no n-gram blocking, no early stopping, greedy or
beam search. Needs optimum 1.22 beside the exporter venv's torch, transformers and
onnxruntime (see docs/onnx.md for the one-off install); not part of the test suite.
Prints one JSON line: per beam count, the median seconds per summary of each side.
"""
import argparse
import json
import os
import statistics
import tempfile
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--beams", default="1,4")
    ap.add_argument("--length", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import onnxruntime
    import torch
    from optimum.onnxruntime import ORTModelForSeq2SeqLM
    from transformers import BartForConditionalGeneration, BartTokenizer

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    tokenizer = BartTokenizer(os.path.join(args.model, "vocab.json"),
                              os.path.join(args.model, "merges.txt"))
    with open(args.text, encoding="utf-8") as f:
        enc = tokenizer(f.read().rstrip("\n"), return_tensors="pt")

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as onnx_dir:
        ort_model = ORTModelForSeq2SeqLM.from_pretrained(args.model, export=True, use_cache=True,
                                                         session_options=options)
        ort_model.save_pretrained(onnx_dir)  # the export, as a user would keep it
        export_seconds = time.perf_counter() - started
        torch_model = BartForConditionalGeneration.from_pretrained(args.model).float().eval()

        def timed(model, beams):
            def once():
                with torch.inference_mode():
                    return model.generate(
                        input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                        num_beams=beams, min_length=args.length, max_length=args.length,
                        no_repeat_ngram_size=0, early_stopping=False, length_penalty=1.0,
                        do_sample=False, num_return_sequences=1, use_cache=True)
            out = once()  # warm-up
            seconds = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                out = once()
                seconds.append(time.perf_counter() - t)
            return statistics.median(seconds), out

        runs = []
        for beams in [int(b) for b in args.beams.split(",")]:
            ort_s, ort_out = timed(ort_model, beams)
            tf_s, tf_out = timed(torch_model, beams)
            runs.append({"beams": beams, "optimum_ort_seconds": round(ort_s, 4),
                         "transformers_seconds": round(tf_s, 4),
                         "ort_over_transformers_speed": round(tf_s / ort_s, 3),
                         "same_tokens": bool(torch.equal(ort_out, tf_out)),
                         "output_tokens": int(ort_out.shape[1] - 1)})
    print(json.dumps({"input_tokens": int(enc.input_ids.shape[1]), "threads": args.threads,
                      "export_seconds": round(export_seconds, 1),
                      "versions": {"onnxruntime": onnxruntime.__version__,
                                   "torch": torch.__version__},
                      "runs": runs}))


if __name__ == "__main__":
    main()
