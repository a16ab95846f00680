"""The pure pieces of cloudtmpl.ssh and of software configs (no sshd involved)."""

from __future__ import annotations

import base64
import email
import hashlib
import subprocess
import time

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloudtmpl import ssh
from cloudtmpl.providers import software


def ed25519_pkey() -> tuple[paramiko.PKey, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                            serialization.NoEncryption()).decode()
    import io

    pkey = paramiko.Ed25519Key.from_private_key(io.StringIO(pem))
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return pkey, public


def test_fingerprint_is_openssh_sha256() -> None:
    pkey, public = ed25519_pkey()
    blob = base64.b64decode(public.split()[1])
    want = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    assert ssh.fingerprint(pkey) == want == ssh.fingerprint(blob)


def test_pinned_host_key_first_use_then_mismatch() -> None:
    pkey, _ = ed25519_pkey()
    other, _ = ed25519_pkey()
    policy = ssh.PinnedHostKey("u@h:22", None)
    policy.missing_host_key(paramiko.SSHClient(), "h", pkey)
    assert policy.seen == ssh.fingerprint(pkey)
    pinned = ssh.PinnedHostKey("u@h:22", ssh.fingerprint(pkey))
    pinned.missing_host_key(paramiko.SSHClient(), "h", pkey)
    with pytest.raises(ssh.HostKeyMismatch, match=r"host key of u@h:22 changed"):
        pinned.missing_host_key(paramiko.SSHClient(), "h", other)


def test_never_auto_add() -> None:
    assert not issubclass(ssh.PinnedHostKey, paramiko.AutoAddPolicy)


def run_bundle(b: ssh.Bundle) -> ssh.Report:
    proc = subprocess.run(["sh", "-s"], input=ssh.bundle(b), capture_output=True, check=True)
    return ssh.parse_report(proc.stdout.decode())


def test_bundle_runs_script_with_env_files_and_outputs(tmp_path: object) -> None:
    b = ssh.Bundle(
        script="#!/bin/sh\necho \"$greeting\"; echo oops >&2\n"
               "printf 'r=%s' \"$(cat \"$target\")\" > \"$heat_outputs_path.result\"\nexit 4\n",
        env={"greeting": "it's \"quoted\"\nand multi-line", "target": f"{tmp_path}/f.txt"},
        files={f"{tmp_path}/f.txt": "file content"},
        outputs=["result", "missing"],
    )
    report = run_bundle(b)
    assert report.status == 4
    assert report.stdout == "it's \"quoted\"\nand multi-line\n"
    assert report.stderr == "oops\n"
    assert report.outputs == {"result": "r=file content"}


def test_bundle_without_shebang_runs_with_sh_and_structured_config() -> None:
    report = run_bundle(ssh.Bundle("cat \"$heat_config_path\"", config_json='{"a": 1}'))
    assert report.status == 0 and report.stdout == '{"a": 1}'


def test_bundle_keeps_secrets_off_the_command_line() -> None:
    data = ssh.bundle(ssh.Bundle("true", env={"token": "s3cr3t"}))
    assert b"s3cr3t" in data  # on stdin, never in argv (the command is `sh -s`)


def test_bundle_refuses_bad_names() -> None:
    with pytest.raises(ValueError, match="not a valid"):
        ssh.bundle(ssh.Bundle("true", env={"no-dash": "x"}))
    with pytest.raises(ValueError, match="not a valid"):
        ssh.bundle(ssh.Bundle("true", outputs=["../x"]))


def test_bundle_keeps_a_bounded_tail_and_head_of_each_stream() -> None:
    small = run_bundle(ssh.Bundle("printf 'one\\ntwo\\n'"))
    assert small.streams["stdout"] == ssh.Stream("one\ntwo\n", "", 8, 0)
    # 3 MiB: the last 64 KiB, and for the log the first MiB; the rest is counted
    big = run_bundle(ssh.Bundle("head -c 3145728 /dev/zero | tr '\\0' a; echo end >&2"))
    out = big.streams["stdout"]
    assert out.size == 3145728 and len(out.tail) == ssh.TAIL_BYTES == 65536
    assert len(out.head) == ssh.LOG_HEAD_BYTES and set(out.head) == {"a"}
    assert out.left_out == 3145728 - 65536 - 1048576
    assert big.stdout == out.tail and big.stderr == "end\n"
    # between the two bounds the log gets all of it, the tail what the state keeps
    mid = run_bundle(ssh.Bundle("seq 1 20000")).streams["stdout"]
    assert mid.left_out == 0 and mid.head + mid.tail == "".join(f"{i}\n" for i in
                                                                range(1, 20001))
    assert len(mid.tail) == 65536 and mid.size == len(mid.head) + 65536


def test_a_cut_tail_drops_the_rest_of_a_split_character() -> None:
    encoded = base64.b64encode("\u20ac and more".encode()[1:]).decode()
    report = ssh.parse_report(f"rc 0\nstdout.size 100\nstdout {encoded}\n")
    assert report.stdout == " and more"


def test_an_output_over_the_bound_is_reported_by_its_size_only() -> None:
    script = ('head -c 1048577 /dev/zero > "$heat_outputs_path.big"\n'
              'echo ok > "$heat_outputs_path.ok"')
    report = run_bundle(ssh.Bundle(script, outputs=["big", "ok"]))
    assert report.outputs == {"ok": "ok\n"} and report.too_big == {"big": 1048577}


def test_the_script_runs_in_a_session_of_its_own_and_says_so_first() -> None:
    proc = subprocess.run(["setsid", "sh", "-s"], capture_output=True, check=True,
                          input=ssh.bundle(ssh.Bundle("ps -o pgid= -p $$; ps -o sid= -p $$")))
    first = proc.stdout.decode().splitlines()[0]
    pgid = first.split()[1]
    assert ssh._kill_target(proc.stdout) == f"-{pgid}"
    report = ssh.parse_report(proc.stdout.decode())
    assert report.stdout.split() == [pgid, pgid]  # its own group and session
    assert ssh._kill_target(b"pid 42\n") == "42" and ssh._kill_target(b"pgid 4") is None
    assert ssh._kill_target(b"rc 0\n") is None


def processes_with(text: str, *, within: float = 5.0) -> list[str]:
    """The processes whose command line has ``text``, once they are gone or ``within``
    seconds have passed (a killed process takes a moment to go on a loaded machine)."""
    deadline = time.monotonic() + within
    while True:
        out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        found = [line for line in out.splitlines() if text in line]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_the_servers_watchdog_kills_the_script_and_is_gone_after_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a script that ends: the watchdog (sleep LIMIT + margin) ends with it
    run_bundle(ssh.Bundle("true", limit=4321))
    assert processes_with(f"sleep {4321 + ssh.WATCHDOG_MARGIN}") == []
    # a script that does not: killed, with what it started, at the limit
    monkeypatch.setattr(ssh, "WATCHDOG_MARGIN", 0)
    started = time.monotonic()
    proc = subprocess.run(["setsid", "sh", "-s"], capture_output=True, check=True, timeout=30,
                          input=ssh.bundle(ssh.Bundle("sleep 7654 & sleep 7655", limit=1)))
    assert time.monotonic() - started < 10
    assert ssh.parse_report(proc.stdout.decode()).status == 128 + 15
    assert processes_with("sleep 765") == []


def test_parse_report_needs_a_status() -> None:
    with pytest.raises(ValueError):
        ssh.parse_report("stdout aGk=\n")


def test_redact_and_tail() -> None:
    assert ssh.redact("a secret and secretive", ["secret", "secretive", ""]) == \
        "a ****** and ******"
    assert ssh.tail("\n".join(str(i) for i in range(30)), lines=3) == "27\n28\n29"


def test_backoff_grows_and_is_capped() -> None:
    delays = ssh.backoff(0.2, 2.0, 1.0)
    assert [round(next(delays), 2) for _ in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]


def test_wait_connect_retries_then_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    calls = []

    def fake_connect(*args: object, **kwargs: object) -> ssh.Connection:
        calls.append(now[0])
        raise ssh.SshError("u@h:22: [Errno 111] Connection refused", retry=True)

    monkeypatch.setattr(ssh, "connect", fake_connect)
    pkey, _ = ed25519_pkey()

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(ssh.SshError, match=r"did not accept SSH connections within 5s \(\d+ "
                                           r"attempts; last error: .*refused"):
        ssh.wait_connect(ssh.Endpoint("h"), pkey, None, timeout=5, clock=lambda: now[0],
                         sleep=sleep)
    assert len(calls) > 3 and calls == sorted(calls)


def test_wait_connect_does_not_retry_a_host_key_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_connect(*args: object, **kwargs: object) -> ssh.Connection:
        calls.append(1)
        raise ssh.HostKeyMismatch("u@h:22", "SHA256:a", "SHA256:b")

    monkeypatch.setattr(ssh, "connect", fake_connect)
    pkey, _ = ed25519_pkey()
    with pytest.raises(ssh.HostKeyMismatch):
        ssh.wait_connect(ssh.Endpoint("h"), pkey, None, timeout=5)
    assert calls == [1]


# -- software config pieces ------------------------------------------------------
def test_config_id_follows_content_and_hides_it() -> None:
    a = software.config_id(b"k", "st", "cfg", "Cloud::Software::Config", {"config": "echo 1"})
    b = software.config_id(b"k", "st", "cfg", "Cloud::Software::Config", {"config": "echo 2"})
    assert a != b and a.startswith("st.cfg@") and "echo" not in a
    assert a == software.config_id(b"k", "st", "cfg", "Cloud::Software::Config",
                                 {"config": "echo 1"})
    assert software.CONFIG_ID.match(a)


def test_cloud_config_and_multipart_are_deterministic() -> None:
    text = software.cloud_config_text({"cloud_config": {"packages": ["nginx"]}})
    assert text == "#cloud-config\npackages:\n- nginx\n"
    parts = [{"config": text}, {"config": "#!/bin/sh\necho hi\n", "filename": "boot.sh"}]
    one = software.multipart_text(parts, lambda ref: None)
    assert one == software.multipart_text(parts, lambda ref: None)
    msg = email.message_from_string(one)
    subtypes = [p.get_content_subtype() for p in msg.get_payload()]  # type: ignore[union-attr]
    assert subtypes == ["cloud-config", "x-shellscript"]
    resolved = software.multipart_text([{"config": "st.c@0123456789abcdef"}],
                                     lambda ref: "#cloud-config\n{}\n")
    assert "cloud-config" in resolved


def test_structured_inputs_names_and_actions() -> None:
    cfg = {"a": {"get_input": "x"}, "b": [{"get_input": "y"}, 1]}
    assert software.substitute_inputs(cfg, {"x": 1, "y": "z"}) == {"a": 1, "b": ["z", 1]}
    assert software.names_of([{"name": "a"}, "b", {"name": "a"}]) == ["a", "b"]
    assert software.actions_of({"actions": ["create", "DELETE"]}) == {"CREATE", "DELETE"}
    assert software.as_text({"b": 1}) == '{"b": 1}' and software.as_text(None) == ""
