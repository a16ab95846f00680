"""The project's host-key pins file (``.cloudtmpl/keys/known_hosts``)."""

from __future__ import annotations

import base64
import hashlib
import threading
from pathlib import Path

from cloudtmpl import known_hosts as kh

KEY_A = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + b"A" * 36).decode()
KEY_B = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + b"B" * 36).decode()


def test_host_patterns_and_fingerprints_are_openssh_s() -> None:
    assert kh.host_pattern("10.0.0.1", 22) == "10.0.0.1"
    assert kh.host_pattern("127.0.0.5", 2222) == "[127.0.0.5]:2222"
    want = "SHA256:" + base64.b64encode(
        hashlib.sha256(base64.b64decode(KEY_A)).digest()).decode().rstrip("=")
    assert kh.fingerprint(KEY_A) == want


def test_lines_it_does_not_read_are_ignored() -> None:
    assert kh.parse_line("# a comment", 1) is None
    assert kh.parse_line("@cert-authority *.example ssh-ed25519 " + KEY_A, 1) is None
    assert kh.parse_line("|1|salt|hash ssh-ed25519 " + KEY_A, 1) is None
    assert kh.parse_line("a,b ssh-ed25519 " + KEY_A, 1) is None
    assert kh.parse_line("h ssh-ed25519 not-base64!", 1) is None
    pin = kh.parse_line(f"[h]:2222 ssh-ed25519 {KEY_A} cloudtmpl:server=s1", 3)
    assert pin == kh.Pin("[h]:2222", "ssh-ed25519", KEY_A, "s1", 3)
    assert pin.text() == f"[h]:2222 ssh-ed25519 {KEY_A} cloudtmpl:server=s1"
    assert kh.parse_line(f"h ssh-ed25519 {KEY_A}", 1).server is None  # type: ignore[union-attr]


def test_a_servers_own_pin_first_then_a_pin_for_every_server() -> None:
    lines = [f"[h]:2222 ssh-ed25519 {KEY_A}",
             f"[h]:2222 ssh-ed25519 {KEY_B} cloudtmpl:server=s1",
             f"[h]:2222 ssh-ed25519 {KEY_B} cloudtmpl:server="]
    assert kh.find(lines, "s1", "h", 2222).key == KEY_B  # type: ignore[union-attr]
    assert kh.find(lines, "s2", "h", 2222).key == KEY_A  # type: ignore[union-attr]
    assert kh.find(lines, "", "h", 2222).line == 3  # type: ignore[union-attr]
    assert kh.find(lines, "s1", "h", 22) is None
    assert kh.find(lines[1:2], "s2", "h", 2222) is None  # another server's pin: learn afresh


def test_pinning_replaces_only_the_same_server_at_the_same_address(tmp_path: Path) -> None:
    path = tmp_path / ".cloudtmpl" / "keys" / "known_hosts"
    pins = kh.KnownHosts(path)
    assert pins.lookup("s1", "h", 22) is None
    pins.pin("s1", "h", 22, "ssh-ed25519", KEY_A)
    assert oct(path.stat().st_mode)[-3:] == "600"
    assert oct(path.parent.stat().st_mode)[-3:] == "700"
    path.write_text("# mine\n" + path.read_text())
    pins.pin("s2", "h", 22, "ssh-ed25519", KEY_B)
    pins.pin("s1", "h", 22, "ssh-ed25519", KEY_A)  # the same: nothing written
    before = path.read_text()
    pins.pin("s1", "h", 22, "ssh-ed25519", KEY_B)  # (the state's pin won)
    assert path.read_text() == before.replace(
        f"h ssh-ed25519 {KEY_A} cloudtmpl:server=s1\n", "") \
        + f"h ssh-ed25519 {KEY_B} cloudtmpl:server=s1\n"
    assert path.read_text().startswith("# mine\n")
    assert pins.lookup("s1", "h", 22).key == KEY_B  # type: ignore[union-attr]
    path.chmod(0o644)
    pins.pin("s3", "h", 22, "ssh-ed25519", KEY_A)
    assert oct(path.stat().st_mode)[-3:] == "600"


def test_pins_from_threads_at_once_are_all_kept(tmp_path: Path) -> None:
    pins = kh.KnownHosts(tmp_path / "known_hosts")
    threads = [threading.Thread(target=pins.pin, args=(f"s{i}", "h", 22, "ssh-ed25519", KEY_A))
               for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(kh.parse_line(line, 0).server or ""  # type: ignore[union-attr]
                  for line in (tmp_path / "known_hosts").read_text().splitlines()) \
        == sorted(f"s{i}" for i in range(20))
