"""Prometheus metrics for the API, in the text exposition format (version 0.0.4).

A small registry of our own rather than a client library: a handful of
counters and one histogram, updated from the request threads under a lock.
Each worker process keeps its own figures (Prometheus sums them per instance
when each worker is scraped; behind one port a scrape reaches one worker).

The route label is the matched path template (``/v2/users/{user_id}``), never
the concrete path, so the number of series stays bounded.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["LATENCY_BUCKETS", "Metrics", "MetricsMiddleware"]

#: Histogram buckets in seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_UNMATCHED = "<unmatched>"

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: Labels = ()) -> str:
    pairs = (*labels, *extra)
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class _Histogram:
    __slots__ = ("buckets", "count", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * len(LATENCY_BUCKETS)
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        index = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        if index < len(self.buckets):
            self.buckets[index] += 1
        self.count += 1
        self.sum += seconds


class Metrics:
    """The API's counters and latency histogram; ``render`` gives the scrape's text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[Labels, int] = defaultdict(int)
        self._latency: dict[Labels, _Histogram] = defaultdict(_Histogram)
        self._outcomes: dict[tuple[str, str], int] = defaultdict(int)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (("method", method), ("route", route), ("status", str(status)))
        with self._lock:
            self._requests[labels] += 1
            self._latency[labels].observe(seconds)

    def count(self, family: str, outcome: str) -> None:
        """One more ``tokenledger_<family>_total{outcome=...}``."""
        with self._lock:
            self._outcomes[(family, outcome)] += 1

    def render(self, gauges: Iterable[tuple[str, str, float]] = ()) -> str:
        """The exposition text; ``gauges`` are (name, help, value) read at scrape time."""
        with self._lock:
            requests = sorted(self._requests.items())
            latency = sorted(
                (k, (list(h.buckets), h.count, h.sum)) for k, h in self._latency.items()
            )
            outcomes = sorted(self._outcomes.items())
        lines = [
            "# HELP tokenledger_http_requests_total HTTP requests answered, by route and status.",
            "# TYPE tokenledger_http_requests_total counter",
        ]
        lines += [f"tokenledger_http_requests_total{_labels(k)} {v}" for k, v in requests]
        lines += [
            "# HELP tokenledger_http_request_duration_seconds Time to answer, by route and status.",
            "# TYPE tokenledger_http_request_duration_seconds histogram",
        ]
        for labels, (buckets, count, total) in latency:
            cumulative = 0
            for bound, n in zip(LATENCY_BUCKETS, buckets, strict=True):
                cumulative += n
                le = (("le", _number(bound)),)
                lines.append(
                    f"tokenledger_http_request_duration_seconds_bucket{_labels(labels, le)} "
                    f"{cumulative}"
                )
            inf = (("le", "+Inf"),)
            lines.append(
                f"tokenledger_http_request_duration_seconds_bucket{_labels(labels, inf)} {count}"
            )
            lines.append(f"tokenledger_http_request_duration_seconds_sum{_labels(labels)} {total}")
            lines.append(
                f"tokenledger_http_request_duration_seconds_count{_labels(labels)} {count}"
            )
        families: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for (family, outcome), n in outcomes:
            families[family].append((outcome, n))
        for family, counts in sorted(families.items()):
            name = f"tokenledger_{family}_total"
            lines += [
                f"# HELP {name} {family.replace('_', ' ').capitalize()}, by outcome.",
                f"# TYPE {name} counter",
            ]
            lines += [f"{name}{_labels((('outcome', o),))} {n}" for o, n in counts]
        for name, help_text, value in gauges:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """Times every HTTP request and counts it by method, matched route and status."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = self.clock()
        status = 500

        async def remember_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, remember_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or _UNMATCHED
            self.metrics.observe_request(
                scope.get("method", "?"), template, status, self.clock() - started
            )
