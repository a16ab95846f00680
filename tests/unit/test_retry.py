"""Retry helper: classification and the backoff loop (sleeper mocked, no network)."""

from __future__ import annotations

from email.utils import formatdate

import pytest
import requests
from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
from libcloud.common.types import InvalidCredsError

from cloudtmpl.providers.base import CloudError
from cloudtmpl.providers.retry import (
    NO_RETRY,
    Retrier,
    RetryPolicy,
    classify,
    error_codes,
    parse_retry_after,
    retry_after_of,
)


class Sleeper:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def failing(*errors: BaseException, result: object = "ok"):
    """A callable that raises ``errors`` in turn, then returns ``result``."""
    state = {"n": 0}

    def fn():
        n = state["n"]
        state["n"] += 1
        if n < len(errors):
            raise errors[n]
        return result

    fn.calls = state  # type: ignore[attr-defined]
    return fn


def aws(code: str, status: int = 400, message: str = "details") -> BaseHTTPError:
    return BaseHTTPError(status, f"{code}: {message}")


# --- classification ---------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_http_status(status):
    assert classify(BaseHTTPError(status, "Oops")).retryable


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409])
def test_client_errors_are_permanent(status):
    assert not classify(BaseHTTPError(status, "Nope")).retryable


@pytest.mark.parametrize(
    "code",
    ["RequestLimitExceeded", "Throttling", "ServiceUnavailable", "InternalError"],
)
def test_retryable_aws_codes_even_with_status_400(code):
    verdict = classify(aws(code, 400))
    assert verdict.retryable
    assert code in verdict.reason


def test_aws_code_on_second_line_counts():
    exc = BaseHTTPError(400, "InvalidParameterValue: x\nRequestLimitExceeded: slow down")
    assert error_codes(exc) == ["InvalidParameterValue", "RequestLimitExceeded"]
    assert classify(exc).retryable


@pytest.mark.parametrize(
    "code",
    ["InvalidAMIID.NotFound", "InvalidParameterValue", "InstanceLimitExceeded",
     "UnauthorizedOperation", "DependencyViolation"],
)
def test_permanent_aws_codes(code):
    assert not classify(aws(code)).retryable


def test_libcloud_rate_limit_error_with_retry_after():
    exc = RateLimitReachedError(headers={"retry-after": "7"})
    verdict = classify(exc)
    assert verdict.retryable
    assert verdict.retry_after == 7.0


def test_rate_limit_without_header_has_no_retry_after():
    verdict = classify(RateLimitReachedError(headers={}))
    assert verdict.retryable
    assert verdict.retry_after is None


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError("refused"),
        ConnectionResetError("reset"),
        TimeoutError("timed out"),
        requests.exceptions.ConnectionError("boom"),
        requests.exceptions.ReadTimeout("slow"),
    ],
)
def test_connection_errors_are_retryable(exc):
    assert classify(exc).retryable


def test_credentials_and_programming_errors_are_permanent():
    assert not classify(InvalidCredsError("AuthFailure: bad key")).retryable
    assert not classify(ValueError("bad")).retryable
    assert not classify(KeyError("x")).retryable
    assert not classify(CloudError("quota", permanent=True)).retryable


def test_transient_cloud_error_is_retryable():
    assert classify(CloudError("busy", permanent=False)).retryable


def test_parse_retry_after_seconds_and_http_date():
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(3) == 3.0
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    date = formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=lambda: 1_000_000.0) == pytest.approx(30.0)


def test_retry_after_from_headers_case_insensitive():
    exc = BaseHTTPError(503, "ServiceUnavailable: busy", headers={"Retry-After": "5"})
    assert retry_after_of(exc) == 5.0
    verdict = classify(exc)
    assert verdict.retryable and verdict.retry_after == 5.0


# --- the loop ---------------------------------------------------------------------


def test_success_first_time_does_not_sleep():
    sleep = Sleeper()
    assert Retrier(sleep=sleep).call(lambda: 42) == 42
    assert sleep.calls == []


def test_retries_until_success_with_full_jitter():
    sleep = Sleeper()
    policy = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=100.0, max_total_delay=100.0)
    fn = failing(aws("Throttling"), BaseHTTPError(503, "x"), ConnectionResetError())
    r = Retrier(policy, sleep=sleep, rand=lambda: 0.5)
    assert r.call(fn) == "ok"
    assert fn.calls["n"] == 4
    # full jitter: rand * min(max_delay, base * 2**attempt)
    assert sleep.calls == [0.5, 1.0, 2.0]


def test_backoff_is_capped_by_max_delay():
    r = Retrier(RetryPolicy(base_delay=1.0, max_delay=4.0), rand=lambda: 0.999999)
    assert [round(r.backoff(n), 3) for n in range(5)] == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_jitter_uses_injected_random():
    r = Retrier(RetryPolicy(base_delay=2.0, max_delay=100.0), rand=lambda: 0.0)
    assert r.backoff(3) == 0.0


def test_permanent_error_is_raised_at_once():
    sleep = Sleeper()
    err = aws("InvalidAMIID.NotFound", message="The image id '[ami-x]' does not exist")
    fn = failing(err)
    with pytest.raises(BaseHTTPError) as info:
        Retrier(sleep=sleep).call(fn)
    assert info.value is err
    assert sleep.calls == []
    assert fn.calls["n"] == 1


def test_gives_up_after_max_attempts_with_last_error():
    sleep = Sleeper()
    errors = [BaseHTTPError(500, f"InternalError: {i}") for i in range(10)]
    fn = failing(*errors)
    policy = RetryPolicy(max_attempts=3, base_delay=0.1, max_total_delay=100.0)
    with pytest.raises(BaseHTTPError) as info:
        Retrier(policy, sleep=sleep, rand=lambda: 1.0).call(fn)
    assert info.value is errors[2]
    assert fn.calls["n"] == 3
    assert len(sleep.calls) == 2


def test_gives_up_when_total_delay_would_be_exceeded():
    sleep = Sleeper()
    fn = failing(*[BaseHTTPError(503, "x") for _ in range(10)])
    policy = RetryPolicy(max_attempts=10, base_delay=4.0, max_delay=4.0, max_total_delay=10.0)
    with pytest.raises(BaseHTTPError):
        Retrier(policy, sleep=sleep, rand=lambda: 1.0).call(fn)
    assert sleep.calls == [4.0, 4.0]  # a third 4 s sleep would pass 10 s
    assert fn.calls["n"] == 3


def test_retry_after_is_honoured_as_a_minimum():
    sleep = Sleeper()
    fn = failing(RateLimitReachedError(headers={"retry-after": "3"}))
    policy = RetryPolicy(base_delay=0.1, max_total_delay=30.0)
    assert Retrier(policy, sleep=sleep, rand=lambda: 0.5).call(fn) == "ok"
    assert sleep.calls == [3.0]


def test_retry_after_beyond_budget_gives_up_without_sleeping():
    sleep = Sleeper()
    err = RateLimitReachedError(headers={"retry-after": "120"})
    with pytest.raises(RateLimitReachedError):
        Retrier(RetryPolicy(max_total_delay=60.0), sleep=sleep).call(failing(err))
    assert sleep.calls == []


def test_no_retry_policy_calls_once():
    sleep = Sleeper()
    fn = failing(BaseHTTPError(503, "x"))
    with pytest.raises(BaseHTTPError):
        Retrier(NO_RETRY, sleep=sleep).call(fn)
    assert fn.calls["n"] == 1 and sleep.calls == []


def test_on_retry_hook_and_custom_classifier():
    seen: list[tuple[int, str, float]] = []
    from cloudtmpl.providers.retry import Verdict

    def everything_retryable(exc: BaseException) -> Verdict:
        return Verdict(True, "test")

    r = Retrier(
        RetryPolicy(max_attempts=3, base_delay=1.0),
        sleep=Sleeper(),
        rand=lambda: 0.25,
        classifier=everything_retryable,
        on_retry=lambda n, exc, d: seen.append((n, str(exc), d)),
    )
    assert r.call(failing(ValueError("a"), ValueError("b"))) == "ok"
    assert seen == [(1, "a", 0.25), (2, "b", 0.5)]


def test_policy_validation():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=-1)


# --- request-rate limit (token bucket) ----------------------------------------------


class FakeClock:
    """A monotonic clock that only moves when the limiter sleeps (or the test says)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_limiter_allows_a_burst_then_paces_at_the_rate():
    from cloudtmpl.providers.retry import RateLimiter

    clock = FakeClock()
    limiter = RateLimiter(20, clock=clock, sleep=clock.sleep)
    for _ in range(20):  # a full bucket: one second's worth at once
        assert limiter.acquire() == 0
    assert clock.sleeps == []
    for _ in range(40):
        limiter.acquire()
    assert clock.sleeps == pytest.approx([0.05] * 40)
    assert clock.now == pytest.approx(102.0)  # 60 requests at 20/s = 3 s, the first 1 s free


def test_limiter_rate_holds_over_any_window():
    from cloudtmpl.providers.retry import RateLimiter

    clock = FakeClock()
    limiter = RateLimiter(5, burst=1, clock=clock, sleep=clock.sleep)
    stamps = []
    for _ in range(50):
        limiter.acquire()
        stamps.append(clock.now)
    for i in range(len(stamps) - 5):
        assert stamps[i + 5] - stamps[i] >= 1.0 - 1e-9  # never more than 5 in a second


def test_limiter_refills_while_idle_but_not_beyond_the_burst():
    from cloudtmpl.providers.retry import RateLimiter

    clock = FakeClock()
    limiter = RateLimiter(10, burst=3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        limiter.acquire()
    clock.now += 60  # a long pause: the bucket fills to 3, not 600
    for _ in range(3):
        assert limiter.acquire() == 0
    assert limiter.acquire() == pytest.approx(0.1)


def test_limiter_unlimited_never_sleeps():
    from cloudtmpl.providers.retry import RateLimiter, limiter_for

    clock = FakeClock()
    for limiter in (RateLimiter(None, clock=clock, sleep=clock.sleep),
                    RateLimiter(0, clock=clock, sleep=clock.sleep),
                    limiter_for({}, clock=clock, sleep=clock.sleep),
                    limiter_for({"catalog": "sandbox-aws", "sandbox": "aws"})):
        assert limiter.unlimited
        for _ in range(1000):
            assert limiter.acquire() == 0
    assert clock.sleeps == []
    assert limiter_for({"request_rate": 20}).rate == 20


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf")])
def test_limiter_rejects_bad_rates(bad):
    from cloudtmpl.providers.retry import RateLimiter

    with pytest.raises(ValueError):
        RateLimiter(bad)


def test_limiter_is_shared_fairly_by_threads():
    """16 threads share one bucket: together they never exceed the rate."""
    import threading

    from cloudtmpl.providers.retry import RateLimiter

    lock = threading.Lock()
    clock = FakeClock()

    def sleep(seconds: float) -> None:  # per-thread view of time is the booking itself
        with lock:
            clock.sleeps.append(seconds)

    limiter = RateLimiter(50, burst=1, clock=clock, sleep=sleep)
    waits: list[float] = []

    def worker() -> None:
        for _ in range(25):
            w = limiter.acquire()
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # the clock never moved, so the 400 bookings queue up: the n-th waits (n-1)/50 s
    assert sorted(waits) == pytest.approx([i / 50 for i in range(400)])
    assert limiter.acquired == 400


def test_adapters_ask_the_limiter_before_every_http_request_including_retries(monkeypatch):
    """A target with request_rate: each HTTP request (each retry too) takes a token first."""
    from libcloud.common.base import Connection

    from cloudtmpl.model import Target
    from cloudtmpl.providers.aws import AwsAdapter
    from cloudtmpl.providers.openstack import OpenStackAdapter

    calls: list[str] = []

    def fake_request(self, *args, **kw):  # libcloud's Connection.request, never on the wire
        calls.append("http")
        raise BaseHTTPError(503, "RequestLimitExceeded: slow down")

    monkeypatch.setattr(Connection, "request", fake_request)
    aws = Target(name="aws-eu", type="aws", region="eu-central-1",
                 options={"request_rate": 20, "endpoint": "http://127.0.0.1:9"})
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")  # botocore's chain reads the environment
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    adapter = AwsAdapter(aws, sleep=lambda s: None)
    assert adapter.client.limiter.rate == 20
    monkeypatch.setattr(adapter.client.limiter, "acquire", lambda: calls.append("token") or 0.0)
    with pytest.raises(CloudError):
        adapter.client.ec2("eu-central-1", "DescribeKeyPairs")
    attempts = adapter.client.retrier.policy.max_attempts
    assert attempts > 1 and calls == ["token", "http"] * attempts

    os_target = Target(name="os", type="openstack", region="RegionOne",
                       options={"request_rate": 5})
    assert OpenStackAdapter(os_target, environ={}).client.limiter.rate == 5


def test_project_file_takes_and_checks_request_rate(tmp_path):
    from cloudtmpl.config import load_project
    from cloudtmpl.diagnostics import DiagnosticError

    (tmp_path / "cloudtmpl.yaml").write_text(
        "providers:\n  aws-eu: {type: aws, region: eu-central-1, request_rate: 20}\n"
        "  os: {type: openstack, cloud: fra, request_rate: 2.5}\n")
    project = load_project(tmp_path)
    assert project.targets["aws-eu"].options["request_rate"] == 20
    assert project.targets["os"].options["request_rate"] == 2.5
    assert "request_rate" not in project.targets["sandbox-aws"].options  # unlimited
    for bad in ("0", "-3", "fast", "true", ".nan", ".inf", "1000001"):
        (tmp_path / "cloudtmpl.yaml").write_text(
            f"providers:\n  aws-eu: {{type: aws, region: eu-central-1,\n"
            f"    request_rate: {bad}}}\n")
        with pytest.raises(DiagnosticError) as exc:
            load_project(tmp_path)
        (diag,) = exc.value.diagnostics
        assert diag.code == "config-request-rate", bad
        assert (diag.loc.line, diag.loc.column) == (3, 19) and diag.hint
