"""A wait condition's signals (Heat's and CloudFormation's forms) and the wait itself,
on an injected clock: no real sleeping."""

from __future__ import annotations

import json

import pytest

from cloudtmpl.providers.base import CloudError
from cloudtmpl.providers.waiting import Wanted, data_of, outcome, parse, wait


def _bodies(*signals: object) -> list[bytes]:
    return [s if isinstance(s, bytes) else json.dumps(s).encode() for s in signals]


def test_heats_defaults_and_a_repeated_id_counting_once() -> None:
    signals = parse(_bodies({"status": "SUCCESS"}, {"reason": "two"}, b"",
                            {"id": "5", "data": "a"}, {"id": "5", "data": "b"}))
    assert [(s.id, s.status, s.reason, s.data) for s in signals] == [
        ("1", "SUCCESS", "Signal 1 received", None), ("2", "SUCCESS", "two", None),
        ("3", "SUCCESS", "Signal 3 received", None), ("5", "SUCCESS", "Signal 5 received", "b")]
    assert data_of(signals) == {"1": None, "2": None, "3": None, "5": "b"}
    assert outcome(signals, 4) is True and outcome(signals, 5) is False


def test_cloudformations_form() -> None:
    (signal,) = parse(_bodies({"Status": "FAILURE", "Reason": "cfn-init failed",
                               "UniqueId": "i-1", "Data": "x"}))
    assert (signal.id, signal.status, signal.reason, signal.data) == \
        ("i-1", "FAILURE", "cfn-init failed", "x")


def test_failure_unknown_status_and_garbage_are_refused() -> None:
    with pytest.raises(CloudError, match="a FAILURE signal arrived: disk full; Signal 2"):
        outcome(parse(_bodies({"status": "FAILURE", "reason": "disk full"},
                              {"status": "FAILURE"})), 1)
    with pytest.raises(CloudError, match="unknown signal status WAITING"):
        outcome(parse(_bodies({"status": "WAITING"})), 1)
    with pytest.raises(CloudError, match="signal 1 is not a JSON object"):
        parse([b"status=SUCCESS"])
    with pytest.raises(CloudError, match="signal 1 is not a JSON object"):
        parse([b"[1, 2]"])


@pytest.mark.parametrize(("props", "message"), [
    ({"count": 0}, "count must be from 1 to 1000"),
    ({"count": 1001}, "count must be from 1 to 1000"),
    ({"timeout": 43201}, "timeout must be from 1 to 43200"),
    ({"count": "many"}, "count must be an integer"),
])
def test_count_and_timeout_are_heats(props: dict[str, object], message: str) -> None:
    with pytest.raises(CloudError, match=message):
        Wanted.of(props)
    assert Wanted.of({}) == Wanted(1, 3600.0)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_polls_at_a_growing_interval_until_count() -> None:
    clock = _Clock()
    arrived: list[bytes] = []

    def read() -> list[bytes]:
        if clock.now > 1.0 and not arrived:
            arrived.extend(_bodies({"id": "a"}, {"id": "b"}))
        return list(arrived)

    signals = wait(read, Wanted(2, 60), "h", clock=clock, sleep=clock.sleep)
    assert [s.id for s in signals] == ["a", "b"]
    assert clock.sleeps[0] == pytest.approx(0.2) and clock.sleeps[1] > clock.sleeps[0]


def test_wait_times_out_naming_the_handle_and_the_count() -> None:
    clock = _Clock()
    with pytest.raises(CloudError, match=r"timed out after 2 s waiting for wait_handle "
                       r"\(container st\.h\): 1 of 3 signals received \(Signal 1 received\)"):
        wait(lambda: _bodies({}), Wanted(3, 2), "wait_handle (container st.h)",
             clock=clock, sleep=clock.sleep, max_interval=0.5)
    assert clock.now == pytest.approx(2.0)
    assert max(clock.sleeps) <= 0.5
