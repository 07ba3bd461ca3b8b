#!/usr/bin/env python3
"""Summarize an article and list its named entities with a gist server.

Usage: python example.py [--target HOST:PORT] [--token TOKEN] [--ca-cert PEM] [FILE]

FILE defaults to the Khan–Li article of this repository (tests/data/khan-li-call.txt).
Prints, in three sections:
  Key points:  one per line, "- TEXT"                      (Summarize)
  Entities:    one per line, "LABEL<TAB>TEXT<TAB>START-END"  (ExtractEntities; code points)
  Stream:      the article's paragraphs sent as p1, p2, ... over ExtractEntitiesStream,
               one line per answer: "ID: N entities" (or "ID: error CODE: MESSAGE")
Exits 1 with one line on standard error when a call fails.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from gist_client import GistClient, GistError, status_name

HERE = Path(__file__).resolve().parent
ARTICLE = HERE.parent.parent / "tests" / "data" / "khan-li-call.txt"


def paragraphs(text: str) -> list[str]:
    """The text's paragraphs: blocks separated by blank lines, trimmed, empty ones dropped."""
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def run(client: GistClient, text: str) -> None:
    summary = client.summarize(text, id="article")
    print("Key points:")
    for point in summary.key_points:
        print(f"- {point.text}")

    found = client.extract_entities(text, id="article")
    print("Entities:")
    for entity in found.entities:
        print(f"{entity.label}\t{entity.text}\t{entity.start}-{entity.end}")

    print("Stream:")
    items = [(f"p{i}", p) for i, p in enumerate(paragraphs(text), start=1)]
    for answer in client.extract_entities_stream(items):
        if answer.HasField("result"):
            print(f"{answer.id}: {len(answer.result.entities)} entities")
        else:
            error = answer.error
            print(f"{answer.id}: error {status_name(error.code)}: {error.message}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:50051", help="the server, HOST:PORT")
    parser.add_argument("--token", help="a bearer token, when the server requires one")
    parser.add_argument("--ca-cert", type=Path, help="PEM file of the CA of a TLS server")
    parser.add_argument("file", nargs="?", type=Path, default=ARTICLE, help="the article (UTF-8)")
    args = parser.parse_args()

    text = args.file.read_text(encoding="utf-8")
    root_certificates = args.ca_cert.read_bytes() if args.ca_cert else None
    try:
        with GistClient(args.target, token=args.token, root_certificates=root_certificates) as client:
            run(client, text)
    except GistError as err:
        print(f"example.py: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
