"""The script runner's pure parts: why a running script must stop, an abort's wait, the log."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from cloudtmpl import ssh
from cloudtmpl.providers import scripts


def test_a_running_script_is_told_why_it_must_stop(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    runner = scripts.ScriptRunner(tmp_path)
    far = time.monotonic() + 100
    assert runner._why_stop(far, 100) is None
    assert runner._why_stop(time.monotonic() - 1, 5) == "timed out after 5 s"
    stop = threading.Event()
    runner.watch(stop)
    stop.set()
    assert runner._why_stop(far, 100) is None  # the grace starts now
    monkeypatch.setattr(scripts, "STOP_GRACE", 0.0)
    assert runner._why_stop(far, 100) == "was stopped: still running 0 s after the interrupt"
    runner.abort(wait=0)
    assert runner._why_stop(far, 100) == "was aborted (a second interrupt)"


def test_an_abort_waits_for_running_scripts_but_not_forever(tmp_path: Path) -> None:
    runner = scripts.ScriptRunner(tmp_path)
    done = threading.Event()

    def script() -> None:
        with runner._counted():
            done.wait(5)

    worker = threading.Thread(target=script)
    worker.start()
    time.sleep(0.05)
    started = time.monotonic()
    runner.abort(wait=0.3)  # the script did not end: given up after the wait
    assert 0.25 < time.monotonic() - started < 2
    threading.Timer(0.2, done.set).start()
    started = time.monotonic()
    runner.abort(wait=5)  # ends when the script does
    assert time.monotonic() - started < 2
    worker.join()


def test_the_log_shows_how_much_was_left_out() -> None:
    assert scripts.stream_text("stdout", ssh.Stream("b\n", "a\n", 4, 0)) == "--- stdout\na\nb\n"
    text = scripts.stream_text("stdout", ssh.Stream("z\n", "a\n", 5 * 1048576, 123))
    assert text.startswith("--- stdout: 5.0 MiB in all; the log keeps the first 1.0 MiB and "
                           "the last 64 KiB\na\n\n[... 123 bytes left out ...]\nz\n")
