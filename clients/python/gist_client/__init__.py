"""A small typed client for the gist gRPC service (package gist.v1).

    from gist_client import GistClient

    with GistClient("127.0.0.1:50051") as gist:
        summary = gist.summarize(article)
        for point in summary.key_points:
            print(point.text)

Unary calls return the generated response messages and raise `GistError` on a failed
call. Stream calls take `(id, text)` pairs and yield one answer per pair, in order; an
answer carries either `result` or `error` (an `ItemError`), so one bad item does not end
the stream. The message classes are generated from proto/gist/v1/gist.proto by
generate.py into gist_client._proto and re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

try:
    from ._proto import gist_pb2, gist_pb2_grpc
except ImportError as err:  # pragma: no cover - a set-up problem, not a bug
    raise ImportError(
        "gist_client._proto is missing or stale: run `python clients/python/generate.py` "
        "(or `make setup`) to generate the gist.v1 stubs"
    ) from err

from ._proto.gist_pb2 import (
    SUMMARY_MODE_ABSTRACTIVE,
    SUMMARY_MODE_AUTO,
    SUMMARY_MODE_EXTRACTIVE,
    SUMMARY_MODE_UNSPECIFIED,
    AnalyzeRequest,
    AnalyzeResponse,
    AnalyzeStreamResponse,
    Entity,
    ExtractEntitiesRequest,
    ExtractEntitiesResponse,
    ExtractEntitiesStreamResponse,
    GenerationOptions,
    ItemError,
    KeyPoint,
    Mention,
    SummarizeRequest,
    SummarizeResponse,
    SummarizeStreamResponse,
    SummaryEntity,
    SummaryMode,
)

__all__ = [
    "GistClient",
    "GistPool",
    "Outcome",
    "CallError",
    "GistError",
    "status_name",
    "gist_pb2",
    "gist_pb2_grpc",
    "SummaryMode",
    "SUMMARY_MODE_UNSPECIFIED",
    "SUMMARY_MODE_AUTO",
    "SUMMARY_MODE_EXTRACTIVE",
    "SUMMARY_MODE_ABSTRACTIVE",
    "GenerationOptions",
    "SummarizeRequest",
    "SummarizeResponse",
    "SummarizeStreamResponse",
    "KeyPoint",
    "ExtractEntitiesRequest",
    "ExtractEntitiesResponse",
    "ExtractEntitiesStreamResponse",
    "Entity",
    "AnalyzeRequest",
    "AnalyzeResponse",
    "AnalyzeStreamResponse",
    "SummaryEntity",
    "Mention",
    "ItemError",
]

from .pool import CallError, GistPool, Outcome  # noqa: E402 (needs the stubs above)

_Response = TypeVar("_Response")

# gRPC status code number -> name ("INVALID_ARGUMENT"), for ItemError.code.
_STATUS_NAMES: dict[int, str] = {status.value[0]: status.name for status in grpc.StatusCode}


def status_name(code: int) -> str:
    """The name of a gRPC status code number, as in `ItemError.code` (3 -> "INVALID_ARGUMENT")."""
    return _STATUS_NAMES.get(code, str(code))


class GistError(Exception):
    """A gist call that failed: the gRPC status code name and the server's message.

    `code` is the name of the status ("INVALID_ARGUMENT", "RESOURCE_EXHAUSTED",
    "UNAVAILABLE", ...); the original `grpc.RpcError` is the exception's `__cause__`.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError) -> GistError:
        """Wrap the error a grpc call raised (its status code and details)."""
        if isinstance(err, grpc.Call):
            code = err.code()
            return cls(code.name if code is not None else "UNKNOWN", err.details() or "")
        return cls("UNKNOWN", str(err))


class GistClient:
    """A connection to a gist server, with one method per RPC.

    `target` is `host:port`, or `dns:///name:port` to spread calls over every address of
    the name (gRPC's round_robin policy; see `GistPool` for many items, with retries and
    periodic re-resolution). The connection is plaintext unless `root_certificates` (PEM
    bytes of the CA that signed the server's certificate) is given or `tls` is true (the
    system's roots). With `token`, every call carries `authorization: Bearer <token>`.
    `timeout` (seconds, None for none) is the deadline of each unary call; `stream_timeout`
    is the deadline of a whole stream (all of its items), none by default.

    Use it as a context manager, or call `close()`.
    """

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        root_certificates: bytes | None = None,
        tls: bool = False,
        timeout: float | None = 60.0,
        stream_timeout: float | None = None,
    ) -> None:
        # With several addresses behind a dns:/// name, call each in turn rather than
        # pinning every call to the first (gRPC's default, pick_first).
        options = [("grpc.lb_policy_name", "round_robin")] if target.startswith("dns:") else []
        if root_certificates is not None or tls:
            credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token is not None else ()
        )
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        # The generated stubs are untyped; their methods get their message types here.
        summarizer = gist_pb2_grpc.SummarizerStub(self._channel)  # type: ignore[no-untyped-call]
        extractor = gist_pb2_grpc.EntityExtractorStub(self._channel)  # type: ignore[no-untyped-call]
        analyzer = gist_pb2_grpc.AnalyzerStub(self._channel)  # type: ignore[no-untyped-call]
        self._summarize: Callable[..., SummarizeResponse] = summarizer.Summarize
        self._summarize_stream: Callable[..., Iterator[SummarizeStreamResponse]] = (
            summarizer.SummarizeStream
        )
        self._extract_entities: Callable[..., ExtractEntitiesResponse] = extractor.ExtractEntities
        self._extract_entities_stream: Callable[..., Iterator[ExtractEntitiesStreamResponse]] = (
            extractor.ExtractEntitiesStream
        )
        self._analyze: Callable[..., AnalyzeResponse] = analyzer.Analyze
        self._analyze_stream: Callable[..., Iterator[AnalyzeStreamResponse]] = analyzer.AnalyzeStream
        self._health_check: Callable[..., health_pb2.HealthCheckResponse] = health_pb2_grpc.HealthStub(
            self._channel
        ).Check

    # --- lifetime ---------------------------------------------------------------------

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> GistClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- unary calls ------------------------------------------------------------------

    def summarize(
        self,
        text: str,
        *,
        id: str = "",
        mode: SummaryMode = SUMMARY_MODE_AUTO,
        max_key_points: int = 0,
        generation: GenerationOptions | None = None,
    ) -> SummarizeResponse:
        """Summarize one article (Summarizer/Summarize).

        `max_key_points` 0 means the server's default (5).

        Raises:
            GistError: INVALID_ARGUMENT for empty or too long text or an option out of
                range, FAILED_PRECONDITION for ABSTRACTIVE without a summarization model,
                RESOURCE_EXHAUSTED when the server's queue is full, UNAVAILABLE while it
                loads or when it cannot be reached.
        """
        request = _summarize_request(text, id, mode, max_key_points, generation)
        return self._unary(self._summarize, request)

    def extract_entities(
        self,
        text: str,
        *,
        id: str = "",
        min_score: float | None = None,
        labels: Sequence[str] = (),
    ) -> ExtractEntitiesResponse:
        """Extract the named entities of one text (EntityExtractor/ExtractEntities).

        `min_score` drops entities scoring below it; `labels` keeps only those labels
        ("PER", "ORG", "LOC", "MISC"); the defaults keep everything.

        Raises:
            GistError: as `summarize`; UNAVAILABLE too when the server has no NER model.
        """
        request = _entities_request(text, id, min_score, labels)
        return self._unary(self._extract_entities, request)

    def analyze(
        self,
        text: str,
        *,
        id: str = "",
        mode: SummaryMode = SUMMARY_MODE_AUTO,
        max_key_points: int = 0,
        generation: GenerationOptions | None = None,
        min_score: float | None = None,
        labels: Sequence[str] = (),
    ) -> AnalyzeResponse:
        """Summarize and extract entities in one call, checking the summary's entities
        against the source (Analyzer/Analyze).

        Raises:
            GistError: those of `summarize` and `extract_entities`.
        """
        request = _analyze_request(text, id, mode, max_key_points, generation, min_score, labels)
        return self._unary(self._analyze, request)

    def health(self, service: str = "") -> str:
        """The serving status of `service` ("" for the whole server, or for example
        "gist.v1.Summarizer") from grpc.health.v1: "SERVING" or "NOT_SERVING".

        Raises:
            GistError: NOT_FOUND for a service the server does not know, UNAVAILABLE
                when the server cannot be reached.
        """
        response = self._unary(self._health_check, health_pb2.HealthCheckRequest(service=service))
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

    # --- streams ----------------------------------------------------------------------

    def summarize_stream(
        self,
        items: Iterable[tuple[str, str]],
        *,
        mode: SummaryMode = SUMMARY_MODE_AUTO,
        max_key_points: int = 0,
        generation: GenerationOptions | None = None,
    ) -> Iterator[SummarizeStreamResponse]:
        """Summarize many `(id, text)` items over one stream (Summarizer/SummarizeStream).

        Yields one answer per item, in item order, with the item's `id` and either
        `result` (a SummarizeResponse) or `error` (an ItemError; `status_name(error.code)`
        names it): check `answer.WhichOneof("outcome")`. Ids must be non-empty. `items` is
        read lazily, as the server makes room (at most 32 items in flight by default).

        Raises:
            GistError: while iterating, when the stream itself fails (UNAVAILABLE when the
                server shuts down or cannot be reached, DEADLINE_EXCEEDED past
                `stream_timeout`); the answers before it have been yielded.
        """
        requests = (
            _summarize_request(text, id, mode, max_key_points, generation) for id, text in items
        )
        return self._stream(self._summarize_stream, requests)

    def extract_entities_stream(
        self,
        items: Iterable[tuple[str, str]],
        *,
        min_score: float | None = None,
        labels: Sequence[str] = (),
    ) -> Iterator[ExtractEntitiesStreamResponse]:
        """Extract the entities of many `(id, text)` items over one stream
        (EntityExtractor/ExtractEntitiesStream). Answers as in `summarize_stream`, with an
        ExtractEntitiesResponse as `result`.

        Raises:
            GistError: as `summarize_stream`.
        """
        requests = (_entities_request(text, id, min_score, labels) for id, text in items)
        return self._stream(self._extract_entities_stream, requests)

    def analyze_stream(
        self,
        items: Iterable[tuple[str, str]],
        *,
        mode: SummaryMode = SUMMARY_MODE_AUTO,
        max_key_points: int = 0,
        generation: GenerationOptions | None = None,
        min_score: float | None = None,
        labels: Sequence[str] = (),
    ) -> Iterator[AnalyzeStreamResponse]:
        """Analyze many `(id, text)` items over one stream (Analyzer/AnalyzeStream).
        Answers as in `summarize_stream`, with an AnalyzeResponse as `result`.

        Raises:
            GistError: as `summarize_stream`.
        """
        requests = (
            _analyze_request(text, id, mode, max_key_points, generation, min_score, labels)
            for id, text in items
        )
        return self._stream(self._analyze_stream, requests)

    # --- plumbing ---------------------------------------------------------------------

    def _unary(self, method: Callable[..., _Response], request: object) -> _Response:
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            raise GistError.from_rpc_error(err) from err

    def _stream(
        self, method: Callable[..., Iterator[_Response]], requests: Iterator[object]
    ) -> Iterator[_Response]:
        call = method(requests, timeout=self.stream_timeout, metadata=self._metadata)
        return _answers(call)


def _answers(call: Iterator[_Response]) -> Iterator[_Response]:
    """Yield a stream call's answers; a failed stream raises GistError, and a caller that
    stops early (breaks out of its loop) cancels the call."""
    try:
        for answer in call:
            yield answer
    except grpc.RpcError as err:
        raise GistError.from_rpc_error(err) from err
    finally:
        if isinstance(call, grpc.Future):
            call.cancel()  # a no-op once the stream has ended


def _summarize_request(
    text: str,
    id: str,
    mode: SummaryMode,
    max_key_points: int,
    generation: GenerationOptions | None,
) -> SummarizeRequest:
    return SummarizeRequest(
        text=text, id=id, mode=mode, max_key_points=max_key_points, generation=generation
    )


def _entities_request(
    text: str, id: str, min_score: float | None, labels: Sequence[str]
) -> ExtractEntitiesRequest:
    # None leaves the optional field unset (the server's "keep all").
    return ExtractEntitiesRequest(text=text, id=id, min_score=min_score, labels=list(labels))


def _analyze_request(
    text: str,
    id: str,
    mode: SummaryMode,
    max_key_points: int,
    generation: GenerationOptions | None,
    min_score: float | None,
    labels: Sequence[str],
) -> AnalyzeRequest:
    return AnalyzeRequest(
        text=text,
        id=id,
        mode=mode,
        max_key_points=max_key_points,
        generation=generation,
        min_score=min_score,
        labels=list(labels),
    )
