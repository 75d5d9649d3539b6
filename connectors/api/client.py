"""HTTP GETs of JSON pages with a rate limit, retries with backoff and jitter, and 429 Retry-After.

Transient failures (timeouts, connection errors, 5xx, 429) are retried; a 429's ``Retry-After``
(seconds or an HTTP date) is waited out exactly, others back off exponentially with full jitter.
Other 4xx answers are configuration errors and stop the connector with the URL and the body.
"""
from __future__ import annotations

import logging
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from connectors import metrics
from kappa.errors import Refused, Unavailable

log = logging.getLogger(__name__)


# The kinds of failed reads kappa_connector_source_errors_total counts (all retried).
SOURCE_ERROR_KINDS = ("network", "429", "5xx", "body")


class TransientHttpError(Unavailable):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentHttpError(Refused, RuntimeError):
    pass


def retry_after_seconds(header: str | None) -> float | None:
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(header).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class RateLimiter:
    """At most ``rate`` requests per second, spaced evenly (0 = no limit)."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self._interval
        if delay > 0:
            time.sleep(delay)


class JsonClient:
    def __init__(self, connector: str, *, timeout_s: float, max_attempts: int, backoff_initial_s: float,
                 backoff_max_s: float, rate_limit_per_s: float, headers: dict[str, str] | None = None) -> None:
        self.connector = connector
        for kind in SOURCE_ERROR_KINDS:  # exported at 0 from the start
            metrics.SOURCE_ERRORS.labels(connector, kind)
        self.timeout_s = timeout_s
        self._session = requests.Session()
        self._session.headers.update({"Accept": "application/json", **(headers or {})})
        self._limiter = RateLimiter(rate_limit_per_s)
        self._jitter = wait_random_exponential(multiplier=backoff_initial_s, max=backoff_max_s)
        self._max_attempts = max_attempts

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientHttpError) and exc.retry_after is not None:
            return exc.retry_after
        return self._jitter(state)

    def get(self, url: str, params: dict[str, Any]) -> Any:
        retrying = Retrying(
            retry=retry_if_exception_type(TransientHttpError), wait=self._wait,
            stop=stop_after_attempt(self._max_attempts), reraise=True,
            before_sleep=lambda s: log.warning("retrying", extra={
                "url": url, "attempt": s.attempt_number, "error": str(s.outcome.exception()),
                "sleep_s": round(s.next_action.sleep, 3) if s.next_action else None}),
        )
        return retrying(self._get_once, url, params)

    def _get_once(self, url: str, params: dict[str, Any]) -> Any:
        self._limiter.wait()
        try:
            response = self._session.get(url, params=params, timeout=self.timeout_s)
        except (requests.Timeout, requests.ConnectionError) as exc:
            metrics.SOURCE_ERRORS.labels(self.connector, "network").inc()
            raise TransientHttpError(f"GET {url}: {exc}") from exc
        if response.status_code == 429:
            metrics.SOURCE_ERRORS.labels(self.connector, "429").inc()
            raise TransientHttpError(f"GET {response.url}: 429 Too Many Requests",
                                     retry_after_seconds(response.headers.get("Retry-After")))
        if response.status_code >= 500:
            metrics.SOURCE_ERRORS.labels(self.connector, "5xx").inc()
            raise TransientHttpError(f"GET {response.url}: HTTP {response.status_code}",
                                     retry_after_seconds(response.headers.get("Retry-After")))
        if response.status_code >= 400:
            raise PermanentHttpError(f"GET {response.url}: HTTP {response.status_code}: {response.text[:500]}")
        try:
            return response.json()
        except ValueError as exc:
            metrics.SOURCE_ERRORS.labels(self.connector, "body").inc()
            raise TransientHttpError(f"GET {response.url}: the body is not JSON ({exc})") from exc
