#!/usr/bin/env python3
"""Generation peer: `transformers` BartForConditionalGeneration.generate at the shape of
sshleifer/distilbart-cnn-6-6 with random weights, for comparison with gist's abstractive
summaries (rust-bert's BART).

    .venv/bin/python generate_peer.py --beams 1,4 --length 60 --input-tokens 512 --threads 2
    .venv/bin/python generate_peer.py --quick

Prints one JSON line. The work is fixed: min_length = max_length = --length (transformers
counts the decoder start token in both, as rust-bert does), no_repeat_ngram_size 0,
early_stopping off, no sampling, so every call decodes exactly the same number of steps
whatever the (random) weights predict. The input is a fixed sequence of --input-tokens ids
(<s>, pseudo-random ids from a seeded generator, </s>): with random weights no tokenizer
is needed. Reported per beam count: seconds per generate (median of --repeats calls after
one warm-up call) and output tokens per second (tokens of the returned sequence, start
token excluded).
"""
import argparse
import statistics
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
    ap.add_argument("--quick", action="store_true",
                    help="32 input tokens, length 4, one measured call: a smoke test")
    args = ap.parse_args(argv)
    if args.quick:
        args.input_tokens, args.length, args.repeats = 32, 4, 1
    args.beam_counts = peerlib.int_list(args.beams)
    if not 3 <= args.input_tokens <= DISTILBART_CNN_6_6["max_position_embeddings"]:
        raise SystemExit("--input-tokens must be between 3 and 1024")
    if args.length < 2 or args.repeats < 1:
        raise SystemExit("--length must be at least 2 and --repeats at least 1")
    return args


def main():
    args = parse_args()
    threads = peerlib.set_threads(args.threads)
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    started = time.perf_counter()
    config = BartConfig(**DISTILBART_CNN_6_6)
    torch.manual_seed(0)
    model = BartForConditionalGeneration(config).eval()
    load_seconds = time.perf_counter() - started
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
        "peer": "generate", "model": "random distilbart-cnn-6-6 shape",
        "parameters": sum(p.numel() for p in model.parameters()),
        "versions": peerlib.versions(), "threads": threads,
        "input_tokens": args.input_tokens, "length": args.length,
        "load_seconds": round(load_seconds, 2), "runs": runs,
        "peak_rss_mb": round(peerlib.peak_rss_mb(), 1),
    })


if __name__ == "__main__":
    main()
