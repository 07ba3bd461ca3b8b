#!/usr/bin/env python3
"""Generation peer: `transformers` BartForConditionalGeneration.generate at the shape of
sshleifer/distilbart-cnn-6-6 with random weights, for comparison with gist's abstractive
summaries (rust-bert's BART).

    .venv/bin/python generate_peer.py --beams 1,4 --length 60 --input-tokens 512 --threads 2
    .venv/bin/python generate_peer.py --save-random DIR   # then gist loads the same model
    .venv/bin/python generate_peer.py --model DIR --text input.txt --beams 1,4 --threads 2
    .venv/bin/python generate_peer.py --quick

Prints one JSON line. The work is fixed: min_length = max_length = --length (transformers
counts the decoder start token in both, as rust-bert does), no_repeat_ngram_size 0,
early_stopping off, no sampling, so every call decodes exactly the same number of steps
whatever the (random) weights predict. The input is either a fixed sequence of --input-tokens ids
(<s>, pseudo-random ids from a seeded generator, </s>: with random weights no tokenizer
is needed), or, for a side-by-side run with gist, --text tokenized with the byte-level
vocabulary that --save-random writes next to the weights (every byte one token: no merges),
which gist's rust-bert tokenizer reads too, so both sides see the same ids. Reported per beam count: seconds per generate (median of --repeats calls after
one warm-up call) and output tokens per second (tokens of the returned sequence, start
token excluded).
"""
import argparse
import json
import os
import statistics
import sys
import time

import peerlib

# sshleifer/distilbart-cnn-6-6: bart-large-cnn with 6 of its 12 encoder and 6 of its 12
# decoder layers. Fields not listed keep transformers' BartConfig defaults, which are
# bart-large's (GELU, post-LayerNorm, learned positions with offset 2, no embedding scale,
# pad 1, <s> 0, </s> 2, decoder start 2, forced </s> at max_length).
DISTILBART_CNN_6_6 = dict(
    vocab_size=50264, d_model=1024, encoder_layers=6, decoder_layers=6,
    encoder_attention_heads=16, decoder_attention_heads=16,
    encoder_ffn_dim=4096, decoder_ffn_dim=4096, max_position_embeddings=1024,
    activation_function="gelu", scale_embedding=False,
    forced_bos_token_id=0, forced_eos_token_id=2,
)

# A BART small enough for smoke tests (bench/run.py --quick), same vocabulary size.
TINY = dict(DISTILBART_CNN_6_6, d_model=64, encoder_layers=1, decoder_layers=1,
            encoder_attention_heads=2, decoder_attention_heads=2,
            encoder_ffn_dim=128, decoder_ffn_dim=128)
SHAPES = {"distilbart-cnn-6-6": DISTILBART_CNN_6_6, "tiny": TINY}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--beams", default="1,4", help="beam counts to measure")
    ap.add_argument("--length", type=int, default=60,
                    help="min_length = max_length of generate (decoder start token included)")
    ap.add_argument("--input-tokens", type=int, default=512,
                    help="input length in tokens, <s> and </s> included (at most 1024)")
    ap.add_argument("--repeats", type=int, default=3, help="measured calls per beam count")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch intra-op and inter-op threads (0: torch's default)")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="distilbart-cnn-6-6",
                    help="the random model's shape (tiny: for smoke tests)")
    ap.add_argument("--save-random", metavar="DIR",
                    help="write the random model (safetensors, config.json) and a byte-level "
                         "vocab.json/merges.txt to DIR, then exit")
    ap.add_argument("--model", metavar="DIR", help="load this model folder (from --save-random) "
                    "instead of building the random model in memory")
    ap.add_argument("--text", metavar="FILE", help="input text, tokenized with --model's "
                    "vocabulary (instead of --input-tokens random ids)")
    ap.add_argument("--quick", action="store_true",
                    help="32 input tokens, length 4, one measured call: a smoke test")
    args = ap.parse_args(argv)
    if args.quick:
        args.input_tokens, args.length, args.repeats = 32, 4, 1
    args.beam_counts = peerlib.int_list(args.beams)
    if args.text and not args.model:
        raise SystemExit("--text needs --model (its vocabulary tokenizes the text)")
    if not 3 <= args.input_tokens <= DISTILBART_CNN_6_6["max_position_embeddings"]:
        raise SystemExit("--input-tokens must be between 3 and 1024")
    if args.length < 2 or args.repeats < 1:
        raise SystemExit("--length must be at least 2 and --repeats at least 1")
    return args


def write_byte_vocab(folder, vocab_size):
    """A byte-level BPE vocabulary without merges, as BART's tokenizer files: the special
    tokens at BART's ids, the 256 byte symbols, then filler tokens (never produced by
    tokenizing, only by generating) up to `vocab_size`, `<mask>` last. Every byte of a text
    is one token, the same in transformers and in rust-bert."""
    import itertools
    import string

    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>"])}
    for symbol in bytes_to_unicode().values():
        vocab[symbol] = len(vocab)
    fillers = ("\u0120" + "".join(p) for p in itertools.product(string.ascii_lowercase, repeat=4))
    while len(vocab) < vocab_size - 1:
        vocab[next(fillers)] = len(vocab)
    vocab["<mask>"] = len(vocab)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")


def main():
    args = parse_args()
    threads = peerlib.set_threads(args.threads)
    import torch
    from transformers import BartConfig, BartForConditionalGeneration, BartTokenizer

    started = time.perf_counter()
    if args.model:
        model = BartForConditionalGeneration.from_pretrained(args.model).float().eval()
        config = model.config
    else:
        config = BartConfig(**SHAPES[args.shape])
        torch.manual_seed(0)
        model = BartForConditionalGeneration(config).eval()
    load_seconds = time.perf_counter() - started
    if args.save_random:
        os.makedirs(args.save_random, exist_ok=True)
        model.save_pretrained(args.save_random, safe_serialization=True)
        write_byte_vocab(args.save_random, config.vocab_size)
        print(f"wrote the random model and its vocabulary to {args.save_random}", file=sys.stderr)
        return
    if args.text:
        tokenizer = BartTokenizer(os.path.join(args.model, "vocab.json"),
                                  os.path.join(args.model, "merges.txt"))
        with open(args.text, encoding="utf-8") as f:
            text = f.read().rstrip("\n")
        input_ids = tokenizer(text, return_tensors="pt").input_ids
        if input_ids.shape[1] > config.max_position_embeddings:
            raise SystemExit(f"{args.text}: {input_ids.shape[1]} tokens, more than the model's "
                             f"{config.max_position_embeddings}")
    else:
        generator = torch.Generator().manual_seed(0)
        body = torch.randint(3, config.vocab_size, (args.input_tokens - 2,), generator=generator)
        input_ids = torch.cat([torch.tensor([config.bos_token_id]), body,
                               torch.tensor([config.eos_token_id])]).unsqueeze(0)
    attention_mask = torch.ones_like(input_ids)

    runs = []
    for beams in args.beam_counts:
        def generate():
            with torch.inference_mode():
                return model.generate(
                    input_ids=input_ids, attention_mask=attention_mask, num_beams=beams,
                    min_length=args.length, max_length=args.length, no_repeat_ngram_size=0,
                    early_stopping=False, length_penalty=1.0, do_sample=False,
                    num_return_sequences=1, use_cache=True)

        generate()  # warm-up
        seconds, out = [], None
        for _ in range(args.repeats):
            t = time.perf_counter()
            out = generate()
            seconds.append(time.perf_counter() - t)
        tokens = out.shape[1] - 1  # the decoder start token is given, not generated
        median = statistics.median(seconds)
        runs.append({"beams": beams, "output_tokens": tokens,
                     "seconds_per_generate": round(median, 4),
                     "min_seconds": round(min(seconds), 4),
                     "tokens_per_second": round(tokens / median, 2),
                     "repeats": args.repeats})
    peerlib.emit({
        "side": "transformers", "peer": "generate", "model": f"random {args.shape} shape",
        "parameters": sum(p.numel() for p in model.parameters()),
        "versions": peerlib.versions(), "threads": threads,
        "input_tokens": int(input_ids.shape[1]), "length": args.length,
        "load_seconds": round(load_seconds, 2), "runs": runs,
        "peak_rss_mb": round(peerlib.peak_rss_mb(), 1),
    })


if __name__ == "__main__":
    main()
