#!/usr/bin/env python3
"""A PySpark job that sends articles through a fleet of gist replicas and writes the
results as Parquet, one row per id.

    spark-submit --py-files gist_client.zip clients/spark/gist_spark.py \\
        --input articles.jsonl --output gist-results.parquet \\
        --endpoint dns:///gist-headless.gist.svc.cluster.local:50051 --task analyze

Input: JSON Lines (`.jsonl`, `.json`) or Parquet (`.parquet`, or a folder of Parquet
files), with an id column (`--id-field`, a string or a number) and a text column
(`--text-field`). Each partition runs in one Python worker, which opens a `GistPool`
(gist_client.pool) on the endpoints and keeps at most `--in-flight` calls outstanding,
spread over every replica (`dns:///name:port`: every address of the name, re-resolved
every `--resolve-every` seconds, as a Kubernetes headless Service gives them), retrying
UNAVAILABLE, RESOURCE_EXHAUSTED and DEADLINE_EXCEEDED with backoff.

Output: Parquet with the columns `id` (string), `ok` (bool), `result` (the response as
JSON, proto field names, as `gist batch` writes it; null when not ok), `code` and
`message` (the gRPC status of a failed item; null when ok) and `attempts`. Every input
id appears exactly once: a task that fails is run again by Spark, and only the output
of the attempt that commits is kept. Ids must be unique in the input: a duplicate id
fails the job, naming it. Items that failed for good (after `--max-attempts`) are rows
with `ok = false`; `--fail-on-errors` makes the job exit 1 when there are any.

`--fail-first-attempt PARTITION` makes the first attempt of that partition raise after
half of its items, to see (and test) Spark retrying a failed task; give the master a
retry budget then (`local[2,2]`: 2 threads, 2 attempts per task; plain `local[2]` never
retries).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from pyspark import TaskContext
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, IntegerType, StringType, StructField, StructType

OUTPUT_SCHEMA = StructType(
    [
        StructField("id", StringType(), nullable=False),
        StructField("ok", BooleanType(), nullable=False),
        StructField("result", StringType(), nullable=True),
        StructField("code", StringType(), nullable=True),
        StructField("message", StringType(), nullable=True),
        StructField("attempts", IntegerType(), nullable=False),
    ]
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True, help="JSON Lines or Parquet articles")
    p.add_argument("--output", required=True, help="Parquet folder for the results (replaced)")
    p.add_argument(
        "--endpoint",
        action="append",
        required=True,
        help="host:port or dns:///name:port; repeat for several",
    )
    p.add_argument("--task", choices=["summarize", "entities", "analyze"], default="analyze")
    p.add_argument("--format", choices=["auto", "jsonl", "parquet"], default="auto")
    p.add_argument("--id-field", default="id")
    p.add_argument("--text-field", default="text")
    p.add_argument("--partitions", type=int, default=0, help="repartition the input (0: keep)")
    p.add_argument("--in-flight", type=int, default=8, help="calls outstanding per partition")
    p.add_argument("--max-attempts", type=int, default=5)
    p.add_argument("--timeout", type=float, default=60.0, help="deadline of each call, seconds")
    p.add_argument("--resolve-every", type=float, default=30.0, help="seconds between DNS lookups")
    p.add_argument("--token", default=None, help="bearer token (servers with --auth-tokens)")
    p.add_argument("--max-key-points", type=int, default=0)
    p.add_argument("--master", default=None, help="Spark master (default: spark-submit's)")
    p.add_argument("--fail-on-errors", action="store_true")
    p.add_argument("--fail-first-attempt", type=int, default=None, metavar="PARTITION")
    args = p.parse_args(argv)
    if args.in_flight < 1:
        p.error(f"--in-flight must be at least 1 (got {args.in_flight})")
    if args.max_attempts < 1:
        p.error(f"--max-attempts must be at least 1 (got {args.max_attempts})")
    return args


def read_articles(spark: SparkSession, args: argparse.Namespace) -> DataFrame:
    fmt = args.format
    if fmt == "auto":
        fmt = "jsonl" if args.input.endswith((".jsonl", ".json")) else "parquet"
    df = spark.read.json(args.input) if fmt == "jsonl" else spark.read.parquet(args.input)
    for field, flag in [(args.id_field, "--id-field"), (args.text_field, "--text-field")]:
        if field not in df.columns:
            raise SystemExit(
                f"gist_spark: {args.input} has no column {field!r} ({flag}); it has {df.columns}"
            )
    return df.select(
        F.col(args.id_field).cast("string").alias("id"),
        F.col(args.text_field).cast("string").alias("text"),
    )


def process_partition(args: argparse.Namespace, rows: Iterator[Row]) -> Iterator[tuple[Any, ...]]:
    """Run one partition's items through gist; yields output rows."""
    # Imported here: this runs in the Python workers, which get gist_client through
    # --py-files (or PYTHONPATH), not from the driver's imports.
    from google.protobuf.json_format import MessageToDict

    from gist_client import GistPool

    items = [(row.id, row.text or "") for row in rows]
    context = TaskContext.get()
    fail_now = (
        args.fail_first_attempt is not None
        and context is not None
        and context.partitionId() == args.fail_first_attempt
        and context.attemptNumber() == 0
    )
    with GistPool(
        args.endpoint,
        token=args.token,
        timeout=args.timeout,
        resolve_every=args.resolve_every,
        max_attempts=args.max_attempts,
    ) as pool:
        if args.task == "summarize":
            outcomes = pool.summarize_many(items, in_flight=args.in_flight, max_key_points=args.max_key_points)
        elif args.task == "entities":
            outcomes = pool.extract_entities_many(items, in_flight=args.in_flight)
        else:
            outcomes = pool.analyze_many(items, in_flight=args.in_flight, max_key_points=args.max_key_points)
        for n, outcome in enumerate(outcomes, start=1):
            if fail_now and n > len(items) // 2:
                raise RuntimeError(
                    f"injected failure (--fail-first-attempt {args.fail_first_attempt}) after "
                    f"{n - 1} of {len(items)} items"
                )
            if outcome.ok:
                result = MessageToDict(outcome.result, preserving_proto_field_name=True)
                yield (outcome.id, True, json.dumps(result, ensure_ascii=False), None, None, outcome.attempts)
            else:
                yield (outcome.id, False, None, outcome.error.code, outcome.error.message, outcome.attempts)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    builder = SparkSession.builder.appName("gist")
    if args.master:
        builder = builder.master(args.master)
        if args.master.startswith("local") and "PYSPARK_PYTHON" not in os.environ:
            # Local workers run this interpreter (the venv with the client's packages),
            # not whatever python3 comes first on PATH.
            os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = builder.getOrCreate()
    try:
        articles = read_articles(spark, args)
        duplicates = articles.groupBy("id").count().where("count > 1").limit(3).collect()
        if duplicates:
            raise SystemExit(
                "gist_spark: ids must be unique; repeated: " + ", ".join(repr(r.id) for r in duplicates)
            )
        if args.partitions > 0:
            articles = articles.repartition(args.partitions)
        results = spark.createDataFrame(
            articles.rdd.mapPartitions(lambda rows: process_partition(args, rows)), OUTPUT_SCHEMA
        )
        results.write.mode("overwrite").parquet(args.output)
        written = spark.read.parquet(args.output)
        total = written.count()
        failed = written.where(~F.col("ok")).count()
        print(f"gist_spark: {total} ids written to {args.output}, {failed} failed", file=sys.stderr)
        return 1 if failed and args.fail_on_errors else 0
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
