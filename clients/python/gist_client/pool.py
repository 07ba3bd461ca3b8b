"""Client-side balancing for many items: `GistPool` spreads calls over every address of
one or more endpoints, re-resolves names periodically, bounds the calls in flight and
retries the retryable ones.

    from gist_client import GistPool

    with GistPool("dns:///gist-headless.default.svc.cluster.local:50051") as pool:
        for outcome in pool.summarize_many(items, in_flight=16):
            if outcome.ok:
                print(outcome.id, outcome.result.key_points[0].text)
            else:
                print(outcome.id, outcome.error.code, outcome.error.message)

An endpoint is `host:port` (one replica, or a balancer in front of several) or
`dns:///name:port`: every address the name resolves to is a replica of its own, as the
addresses of a Kubernetes headless Service are. Names are resolved with the system's
resolver (`getaddrinfo`: /etc/hosts, then DNS) when the pool starts and again every
`resolve_every` seconds; a replica that appears gets work from then on, and one that
disappears finishes what it has and is closed. This is what `gist batch --endpoint
dns:///name:port` does with its streams; here each item is one unary call.

Each call goes to the replica with the fewest calls outstanding (round-robin among
equals), so a faster replica takes more. A call that fails with UNAVAILABLE,
RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED is tried again, on another replica when there is
one, after a backoff (doubled per attempt, with jitter, at least the server's
`grpc-retry-pushback-ms` hint), up to `max_attempts` attempts in all; a replica that
answered UNAVAILABLE gets no new calls for the same backoff. Other codes
(INVALID_ARGUMENT for a text over the limits, ...) are final at once.

gRPC's own `dns:///` resolver with the round_robin policy also spreads calls, but it
re-resolves only when a connection fails, so it never sees a replica added by scaling
up; hence this pool resolves by itself.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Generic, TypeVar

import grpc

from ._proto import gist_pb2_grpc
from ._proto.gist_pb2 import (
    SUMMARY_MODE_AUTO,
    AnalyzeRequest,
    AnalyzeResponse,
    ExtractEntitiesRequest,
    ExtractEntitiesResponse,
    GenerationOptions,
    SummarizeRequest,
    SummarizeResponse,
    SummaryMode,
)

__all__ = ["GistPool", "Outcome", "RETRYABLE", "parse_endpoint"]

log = logging.getLogger("gist_client.pool")

_Result = TypeVar("_Result")

#: Status code names worth another attempt: the replica was down, overloaded or out of time.
RETRYABLE = frozenset({"UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"})


@dataclass(frozen=True)
class CallError:
    """Why an item failed for good: the gRPC status code name and the server's message."""

    code: str
    message: str


@dataclass(frozen=True)
class Outcome(Generic[_Result]):
    """One item's end: `result` (the response message) when `ok`, else `error`.
    `attempts` counts the calls made for it, the first included."""

    id: str
    result: _Result | None
    error: CallError | None
    attempts: int

    @property
    def ok(self) -> bool:
        return self.error is None


def parse_endpoint(endpoint: str) -> tuple[str, str, int] | tuple[str, str]:
    """Split an endpoint into ("dns", host, port) or ("direct", target).

    Raises:
        ValueError: naming the endpoint, for `dns://AUTHORITY/...` (a DNS server of its
            own is not supported: the system's resolver is used), or a `dns:` endpoint
            without `host:port`.
    """
    if not endpoint.startswith("dns:"):
        target = endpoint.removeprefix("http://")
        if "://" in target:
            raise ValueError(
                f"endpoint {endpoint!r}: only host:port, http://host:port and "
                "dns:///name:port are supported (TLS: pass tls=True or root_certificates)"
            )
        return ("direct", target)
    rest = endpoint[len("dns:") :]
    if rest.startswith("//"):
        authority, _, rest = rest[2:].partition("/")
        if authority:
            raise ValueError(
                f"endpoint {endpoint!r}: a DNS server in the address (dns://{authority}/...) "
                "is not supported; use dns:///name:port and the system's resolver"
            )
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"endpoint {endpoint!r}: expected dns:///name:port with a port from 1 to 65535")
    return ("dns", host, int(port))


def _resolve(host: str, port: int) -> set[str]:
    """Every address of `host` as `ip:port` / `[ipv6]:port` targets."""
    found = set()
    for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        ip = sockaddr[0]
        found.add(f"[{ip}]:{port}" if family == socket.AF_INET6 else f"{ip}:{port}")
    return found


class _Replica:
    """One address: its channel, stubs and load."""

    def __init__(self, target: str, credentials: grpc.ChannelCredentials | None) -> None:
        self.target = target
        if credentials is None:
            self.channel = grpc.insecure_channel(target)
        else:
            self.channel = grpc.secure_channel(target, credentials)
        summarizer = gist_pb2_grpc.SummarizerStub(self.channel)  # type: ignore[no-untyped-call]
        extractor = gist_pb2_grpc.EntityExtractorStub(self.channel)  # type: ignore[no-untyped-call]
        analyzer = gist_pb2_grpc.AnalyzerStub(self.channel)  # type: ignore[no-untyped-call]
        self.methods: dict[str, Callable[..., grpc.Future]] = {
            "summarize": summarizer.Summarize.future,
            "entities": extractor.ExtractEntities.future,
            "analyze": analyzer.Analyze.future,
        }
        self.outstanding = 0
        self.cool_until = 0.0  # no new calls before this (after an UNAVAILABLE)
        self.retired = False  # its address vanished: finish what it has, then close
        self.calls = 0  # calls sent here, for the caller's logs and tests

    def close(self) -> None:
        self.channel.close()


@dataclass(order=True)
class _Retry:
    due: float
    seq: int
    id: str = field(compare=False)
    request: object = field(compare=False)
    attempts: int = field(compare=False)
    avoid: str | None = field(compare=False)


class GistPool:
    """A pool of gist replicas behind one or more endpoints (see the module's doc).

    `endpoints`: one string or several, each `host:port` or `dns:///name:port`.
    `token`, `root_certificates`, `tls`: as for `GistClient`. `timeout` is each call's
    deadline in seconds. `resolve_every` (seconds) is how often `dns:///` names are
    resolved again; `max_attempts`, `retry_base` and `retry_max` (seconds) shape retries.
    `give_up_after` (seconds) bounds how long the pool waits with no replica at all (a
    name that resolves to nothing, or every replica cooling down after UNAVAILABLE)
    before the items waiting fail with UNAVAILABLE.

    Raises:
        ValueError: for an endpoint it cannot use (named in the message).
    """

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        token: str | None = None,
        root_certificates: bytes | None = None,
        tls: bool = False,
        timeout: float = 60.0,
        resolve_every: float = 30.0,
        max_attempts: int = 5,
        retry_base: float = 0.2,
        retry_max: float = 10.0,
        give_up_after: float = 60.0,
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        if not endpoints:
            raise ValueError("endpoints: at least one host:port or dns:///name:port is needed")
        self._endpoints = [parse_endpoint(e) for e in endpoints]
        self._credentials = (
            grpc.ssl_channel_credentials(root_certificates=root_certificates)
            if root_certificates is not None or tls
            else None
        )
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token is not None else ()
        )
        self.timeout = timeout
        self.resolve_every = resolve_every
        self.max_attempts = max(1, max_attempts)
        self.retry_base = retry_base
        self.retry_max = max(retry_max, retry_base)
        self.give_up_after = give_up_after
        self._replicas: dict[str, _Replica] = {}
        self._resolved_at = float("-inf")
        self._rotation = itertools.count()
        self._lock = threading.Lock()  # guards replica load counters (gRPC callbacks)

    # --- lifetime ---------------------------------------------------------------------

    def close(self) -> None:
        """Close every channel; calls in flight are cancelled."""
        for replica in self._replicas.values():
            replica.close()
        self._replicas.clear()

    def __enter__(self) -> GistPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def replicas(self) -> dict[str, int]:
        """The addresses in use now and how many calls each was sent (resolving first
        when it is time to)."""
        self._refresh(time.monotonic())
        return {t: r.calls for t, r in self._replicas.items() if not r.retired}

    # --- many items -------------------------------------------------------------------

    def summarize_many(
        self,
        items: Iterable[tuple[str, str]],
        *,
        in_flight: int = 32,
        mode: SummaryMode = SUMMARY_MODE_AUTO,
        max_key_points: int = 0,
        generation: GenerationOptions | None = None,
    ) -> Iterator[Outcome[SummarizeResponse]]:
        """Summarize `(id, text)` items; yields one `Outcome` per item as each ends (in
        completion order, not input order). `items` is read lazily, at most `in_flight`
        calls at a time."""
        requests = (
            (
                id,
                SummarizeRequest(
                    text=text, id=id, mode=mode, max_key_points=max_key_points, generation=generation
                ),
            )
            for id, text in items
        )
        return self._run("summarize", requests, in_flight)

    def extract_entities_many(
        self,
        items: Iterable[tuple[str, str]],
        *,
        in_flight: int = 32,
        min_score: float | None = None,
        labels: Sequence[str] = (),
    ) -> Iterator[Outcome[ExtractEntitiesResponse]]:
        """Extract the entities of `(id, text)` items; as `summarize_many`."""
        requests = (
            (id, ExtractEntitiesRequest(text=text, id=id, min_score=min_score, labels=list(labels)))
            for id, text in items
        )
        return self._run("entities", requests, in_flight)

    def analyze_many(
        self,
        items: Iterable[tuple[str, str]],
        *,
        in_flight: int = 32,
        mode: SummaryMode = SUMMARY_MODE_AUTO,
        max_key_points: int = 0,
        generation: GenerationOptions | None = None,
        min_score: float | None = None,
        labels: Sequence[str] = (),
    ) -> Iterator[Outcome[AnalyzeResponse]]:
        """Analyze `(id, text)` items; as `summarize_many`."""
        requests = (
            (
                id,
                AnalyzeRequest(
                    text=text,
                    id=id,
                    mode=mode,
                    max_key_points=max_key_points,
                    generation=generation,
                    min_score=min_score,
                    labels=list(labels),
                ),
            )
            for id, text in items
        )
        return self._run("analyze", requests, in_flight)

    # --- the engine -------------------------------------------------------------------

    def _refresh(self, now: float) -> None:
        """Resolve the names again when `resolve_every` has passed."""
        if now - self._resolved_at < self.resolve_every and self._replicas:
            return
        self._resolved_at = now
        wanted: set[str] = set()
        for endpoint in self._endpoints:
            if endpoint[0] == "direct":
                wanted.add(endpoint[1])
                continue
            _, host, port = endpoint
            try:
                wanted |= _resolve(host, port)
            except OSError as err:
                # Keep the replicas of this name that we have: a resolver hiccup is not
                # a reason to stop using them.
                log.warning("cannot resolve %s: %s; keeping its known addresses", host, err)
                wanted |= {t for t, r in self._replicas.items() if not r.retired and _port_of(t) == port}
        for target in wanted:
            replica = self._replicas.get(target)
            if replica is None:
                log.info("replica %s added", target)
                self._replicas[target] = _Replica(target, self._credentials)
            elif replica.retired:
                replica.retired = False
        for target, replica in list(self._replicas.items()):
            if target not in wanted and not replica.retired:
                log.info("replica %s gone from the name; finishing its calls", target)
                replica.retired = True
        self._reap()

    def _reap(self) -> None:
        with self._lock:
            done = [t for t, r in self._replicas.items() if r.retired and r.outstanding == 0]
        for target in done:
            self._replicas.pop(target).close()

    def _pick(self, now: float, avoid: str | None) -> _Replica | None:
        with self._lock:
            ready = [r for r in self._replicas.values() if not r.retired and r.cool_until <= now]
            if avoid is not None and len(ready) > 1:
                ready = [r for r in ready if r.target != avoid] or ready
            if not ready:
                return None
            turn = next(self._rotation)
            least = min(r.outstanding for r in ready)
            candidates = [r for r in ready if r.outstanding == least]
            replica = candidates[turn % len(candidates)]
            replica.outstanding += 1
            replica.calls += 1
            return replica

    def _backoff(self, attempts: int, hint: float) -> float:
        wait = min(self.retry_max, self.retry_base * (2 ** (attempts - 1)))
        wait *= 0.5 + random.random() / 2  # jitter: spread the retries of a burst
        return min(self.retry_max, max(wait, hint))

    def _run(
        self, method: str, requests: Iterator[tuple[str, object]], in_flight: int
    ) -> Iterator[Outcome[_Result]]:
        window = max(1, in_flight)
        done: queue.Queue[tuple[str, object, int, _Replica, grpc.Future]] = queue.Queue()
        retries: list[_Retry] = []
        seq = itertools.count()
        running = 0
        more = True
        stalled_since: float | None = None

        def send(id: str, request: object, attempts: int, avoid: str | None) -> bool:
            # Resolve (when due) after the item is in hand: pulling it may have taken a
            # while (a slow generator), and the name may have changed meanwhile.
            now = time.monotonic()
            self._refresh(now)
            replica = self._pick(now, avoid)
            if replica is None:
                return False
            future = replica.methods[method](request, timeout=self.timeout, metadata=self._metadata)
            future.add_done_callback(lambda f: done.put((id, request, attempts, replica, f)))
            return True

        while more or running or retries:
            now = time.monotonic()
            self._refresh(now)
            # Fill the window: due retries first, then new items.
            while running < window:
                if retries and retries[0].due <= now:
                    retry = retries[0]
                    if not send(retry.id, retry.request, retry.attempts, retry.avoid):
                        break
                    heapq.heappop(retries)
                elif more:
                    try:
                        id, request = next(requests)
                    except StopIteration:
                        more = False
                        continue
                    if not send(id, request, 1, None):
                        heapq.heappush(retries, _Retry(now, next(seq), id, request, 1, None))
                        break
                else:
                    break
                running += 1
            if running == 0 and retries:
                # Nothing in flight: either waiting out a backoff, or no replica to use.
                stalled_since = stalled_since or now
                if now - stalled_since > self.give_up_after:
                    while retries:
                        r = heapq.heappop(retries)
                        yield Outcome(
                            r.id,
                            None,
                            CallError("UNAVAILABLE", "no replica to send it to (give_up_after)"),
                            r.attempts,
                        )
                    continue
                wait = max(0.0, retries[0].due - now) or 0.05
                time.sleep(min(wait, 0.5))
                continue
            stalled_since = None
            try:
                id, request, attempts, replica, future = done.get(timeout=0.5)
            except queue.Empty:
                continue  # a due retry, or a re-resolution, may be waiting
            running -= 1
            with self._lock:
                replica.outstanding -= 1
            outcome = self._settle(id, request, attempts, replica, future, retries, seq)
            if outcome is not None:
                yield outcome
            self._reap()

    def _settle(
        self,
        id: str,
        request: object,
        attempts: int,
        replica: _Replica,
        future: grpc.Future,
        retries: list[_Retry],
        seq: Iterator[int],
    ) -> Outcome[_Result] | None:
        err = future.exception()
        if err is None:
            return Outcome(id, future.result(), None, attempts)
        code = err.code().name if isinstance(err, grpc.Call) and err.code() is not None else "UNKNOWN"
        message = err.details() if isinstance(err, grpc.Call) else str(err)
        if code in RETRYABLE and attempts < self.max_attempts:
            hint = _pushback(err)
            wait = self._backoff(attempts, hint)
            if code == "UNAVAILABLE":
                with self._lock:
                    replica.cool_until = max(replica.cool_until, time.monotonic() + wait)
            log.debug("%s on %s: %s %s; retrying in %.2f s", id, replica.target, code, message, wait)
            heapq.heappush(
                retries, _Retry(time.monotonic() + wait, next(seq), id, request, attempts + 1, replica.target)
            )
            return None
        return Outcome(id, None, CallError(code, message or ""), attempts)


def _pushback(err: BaseException) -> float:
    """The server's `grpc-retry-pushback-ms` hint, in seconds (0 when none)."""
    if not isinstance(err, grpc.Call):
        return 0.0
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-retry-pushback-ms":
            try:
                return max(0, int(value)) / 1000
            except ValueError:
                return 0.0
    return 0.0


def _port_of(target: str) -> int:
    return int(target.rpartition(":")[2])
