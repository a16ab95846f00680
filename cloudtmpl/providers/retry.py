"""Bounded retries for cloud API calls: exponential backoff with full jitter.

Pure logic: no network, no global state.  The sleeper, the random source and
the wall clock (for ``Retry-After`` given as an HTTP date) are injected, so
tests drive every branch without waiting.

* :func:`classify` decides whether an error is worth retrying (throttling,
  HTTP 429/5xx, AWS ``RequestLimitExceeded``/``Throttling``/
  ``ServiceUnavailable``/``InternalError``, connection errors and timeouts,
  libcloud's ``RateLimitReachedError``) or permanent (everything else: invalid
  parameters, missing images, bad credentials, quota).
* :class:`Retrier` calls a function until it succeeds, a permanent error
  occurs, ``max_attempts`` calls have been made, or the next sleep would push
  the total delay past ``max_total_delay``.  The last error is re-raised
  unchanged; the caller translates it.

* :class:`RateLimiter` is a thread-safe token bucket (``rate`` requests per
  second, bursts of ``burst``) that an adapter shares between all its threads
  and asks before every HTTP request, retries included (``request_rate`` of a
  target in ``cloudtmpl.yaml``; :func:`limiter_for` builds it, unlimited when
  the target sets none).

Delays follow "full jitter" (AWS architecture blog): attempt *n* (0-based)
sleeps ``uniform(0, min(max_delay, base_delay * 2**n))``.  When the error
carries a ``Retry-After`` value the sleep is at least that long (the server
knows best), still bounded by ``max_total_delay``.
"""

from __future__ import annotations

import math
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import mktime_tz, parsedate_tz
from typing import Any, TypeVar

import requests

T = TypeVar("T")

RETRYABLE_HTTP_STATUS = frozenset({429, 500, 502, 503, 504})

# AWS error codes (any service) that mean "try again later".
RETRYABLE_AWS_CODES = frozenset({
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "EC2ThrottledException",
    "TooManyRequestsException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "PriorRequestNotComplete",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "RequestTimeout",
    "RequestTimeoutException",
})

# "Code: message" as libcloud's AWS responses join them (one per line).
_CODE_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z0-9]+)*)\s*:", re.MULTILINE)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of a retry loop.  ``max_attempts`` counts calls, not retries."""

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 20.0  # cap of one backoff sleep (before jitter)
    max_total_delay: float = 60.0  # cap of all sleeps together

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_total_delay < 0:
            raise ValueError("delays must not be negative")


DEFAULT_POLICY = RetryPolicy()
# The local sandboxes answer in milliseconds: shorter sleeps, more attempts (their
# fault knobs inject failures at rates a real cloud would not sustain).
SANDBOX_POLICY = RetryPolicy(max_attempts=8, base_delay=0.1, max_delay=1.0,
                             max_total_delay=10.0)
NO_RETRY = RetryPolicy(max_attempts=1)


@dataclass(frozen=True)
class Verdict:
    """What :func:`classify` concluded about one error."""

    retryable: bool
    reason: str
    retry_after: float | None = None  # seconds, when the error says how long to wait


def error_codes(exc: BaseException) -> list[str]:
    """The cloud error codes an exception carries (AWS ``Code`` values).

    Looks at a string ``code``/``error_code`` attribute and at ``Code: message``
    lines in the message, which is how libcloud reports AWS errors.
    """
    codes: list[str] = []
    for attr in ("error_code", "code"):
        value = getattr(exc, attr, None)
        if isinstance(value, str) and value and not value.isdigit():
            codes.append(value)
    text = getattr(exc, "message", None)
    if not isinstance(text, str):
        text = str(exc)
    codes.extend(m.group(1) for m in _CODE_RE.finditer(text))
    return codes


def http_status(exc: BaseException) -> int | None:
    """The HTTP status an exception carries, if any (libcloud: ``code``)."""
    for attr in ("status_code", "http_status", "code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and 100 <= value <= 599:
            return value
        if isinstance(value, str) and value.isdigit() and 100 <= int(value) <= 599:
            return int(value)
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int) and 100 <= status <= 599:
        return status
    return None


def parse_retry_after(value: Any, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return max(0.0, float(value))
    text = str(value).strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parsed = parsedate_tz(text)
    if parsed is None:
        return None
    return max(0.0, float(mktime_tz(parsed)) - now())


def retry_after_of(exc: BaseException, *, now: Callable[[], float] = time.time) -> float | None:
    """The ``Retry-After`` an error carries: an attribute or a response header."""
    value = getattr(exc, "retry_after", None)
    if value is not None:
        seconds = parse_retry_after(value, now=now)
        # libcloud sets retry_after=0 when the header was absent: treat as "not given".
        if seconds:
            return seconds
    headers = getattr(exc, "headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    if isinstance(headers, Mapping):
        for key, val in headers.items():
            if str(key).lower() == "retry-after":
                return parse_retry_after(val, now=now)
    return None


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror)):
        # gaierror: DNS may be flaky; a wrong host keeps failing and is bounded anyway.
        return True
    # requests is what libcloud speaks HTTP through
    return isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout))


def classify(exc: BaseException, *, now: Callable[[], float] = time.time) -> Verdict:
    """Is ``exc`` worth retrying?  Unknown errors are permanent."""
    retry_after = retry_after_of(exc, now=now)
    if type(exc).__name__ == "RateLimitReachedError":
        return Verdict(True, "rate limited (HTTP 429)", retry_after)
    for code in error_codes(exc):
        if code in RETRYABLE_AWS_CODES:
            return Verdict(True, f"cloud says {code}", retry_after)
    status = http_status(exc)
    if status in RETRYABLE_HTTP_STATUS:
        return Verdict(True, f"HTTP {status}", retry_after)
    if _is_connection_error(exc):
        return Verdict(True, f"connection problem ({type(exc).__name__})", retry_after)
    if getattr(exc, "permanent", True) is False:
        return Verdict(True, "transient error", retry_after)
    return Verdict(False, "permanent error")


class Retrier:
    """Calls a function with bounded, jittered retries.

    ``sleep`` and ``rand`` (a ``() -> float in [0, 1)``) are injectable; so are
    ``classifier`` and ``on_retry(attempt, exc, delay)`` (for logging).
    """

    def __init__(
        self,
        policy: RetryPolicy = DEFAULT_POLICY,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        classifier: Callable[[BaseException], Verdict] = classify,
        on_retry: Callable[[int, BaseException, float], None] | None = None,
    ) -> None:
        self.policy = policy
        self.sleep = sleep
        self.rand = rand
        self.classifier = classifier
        self.on_retry = on_retry

    def backoff(self, attempt: int) -> float:
        """Full-jitter delay after the ``attempt``-th failed call (0-based)."""
        p = self.policy
        ceiling = min(p.max_delay, p.base_delay * (2 ** min(attempt, 62)))
        return ceiling * self.rand()

    def call(self, fn: Callable[[], T]) -> T:
        p = self.policy
        slept = 0.0
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as exc:
                verdict = self.classifier(exc)
                if not verdict.retryable or attempt + 1 >= p.max_attempts:
                    raise
                delay = self.backoff(attempt)
                if verdict.retry_after is not None:
                    delay = max(delay, verdict.retry_after)
                if slept + delay > p.max_total_delay:
                    raise
                if self.on_retry is not None:
                    self.on_retry(attempt + 1, exc, delay)
                self.sleep(delay)
                slept += delay
                attempt += 1

    __call__ = call


def retry_call(
    fn: Callable[[], T],
    policy: RetryPolicy = DEFAULT_POLICY,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
) -> T:
    """One-shot convenience wrapper around :class:`Retrier`."""
    return Retrier(policy, sleep=sleep, rand=rand).call(fn)


# ------------------------------------------------------------------ rate limiting


class RateLimiter:
    """A thread-safe token bucket: at most ``rate`` acquisitions per second on average.

    The bucket holds up to ``burst`` tokens (default: one second's worth, at
    least 1) and starts full; each :meth:`acquire` takes one token, sleeping
    (outside the lock) until the bucket has refilled enough.  Waiters are served
    in the order they reserved: a token is booked when ``acquire`` is called,
    so N threads never wake up together to find one token.  ``rate=None`` (or
    0) means unlimited: ``acquire`` returns at once.  ``clock`` (monotonic
    seconds) and ``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        rate: float | None,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate is not None and (not math.isfinite(rate) or rate < 0):
            raise ValueError("rate must be a finite number >= 0 (None or 0: unlimited)")
        self.rate = float(rate) if rate else None
        if burst is None:
            burst = max(1.0, self.rate or 1.0)
        if not math.isfinite(burst) or burst < 1:
            raise ValueError("burst must be at least 1")
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst  # may go negative: tokens booked by waiting threads
        self._stamp = clock()
        self.waited = 0.0  # total seconds callers slept (for diagnostics and tests)
        self.acquired = 0

    @property
    def unlimited(self) -> bool:
        return self.rate is None

    def reserve(self) -> float:
        """Book one token; return how long the caller must wait before using it."""
        if self.rate is None:
            with self._lock:
                self.acquired += 1
            return 0.0
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._stamp)
            self._stamp = max(self._stamp, now)
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._tokens -= 1.0
            self.acquired += 1
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
            self.waited += wait
            return wait

    def acquire(self) -> float:
        """Take one token, sleeping as long as needed; returns the seconds slept."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait

    __call__ = acquire


UNLIMITED = RateLimiter(None)


def request_rate_of(options: Mapping[str, Any]) -> float | None:
    """A target's ``request_rate`` option as a number (None: unlimited)."""
    value = options.get("request_rate")
    if value is None or isinstance(value, bool):
        return None
    try:
        rate = float(value)
    except (TypeError, ValueError):
        return None
    return rate if math.isfinite(rate) and rate > 0 else None


def limiter_for(
    options: Mapping[str, Any],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RateLimiter:
    """The token bucket of one adapter: ``request_rate`` requests/second, else unlimited."""
    return RateLimiter(request_rate_of(options), clock=clock, sleep=sleep)
