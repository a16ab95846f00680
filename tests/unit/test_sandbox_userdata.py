"""What the sandbox's cloud-init reads from user data (cloudtmpl_sandbox.userdata) and
where write_files land (boot.inside): pure values, no process."""

from __future__ import annotations

import base64
import gzip
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

from cloudtmpl_sandbox.boot import inside
from cloudtmpl_sandbox.userdata import parse


def test_a_script_is_one_user_script() -> None:
    plan = parse(b"#!/usr/bin/env python3\nprint(1)\n")
    assert plan.scripts == (("part-001", b"#!/usr/bin/env python3\nprint(1)\n"),)
    assert not plan.warnings and not plan.bootcmd and not plan.write_files


def test_gzip_and_cloud_config_modules() -> None:
    packed = base64.b64encode(gzip.compress(b"zipped")).decode()
    text = f"""#cloud-config
bootcmd: [echo boot]
runcmd:
  - echo one
  - [printf, '%s', "two words"]
  - 3
write_files:
  - {{path: /etc/a, content: plain}}
  - {{path: /etc/b, content: {packed}, encoding: gzip+base64, permissions: '0600',
      append: true, defer: true}}
  - {{content: no path}}
  - {{path: /etc/c, content: x, encoding: rot13, permissions: 'rwx'}}
users: [default]
"""
    plan = parse(gzip.compress(text.encode()))
    assert plan.bootcmd == ("echo boot",)
    (name, runcmd), = plan.scripts
    assert name == "runcmd"
    assert runcmd == b"#!/bin/sh\necho one\nprintf %s 'two words'\n"
    a, b, c = plan.write_files
    assert (a.path, a.content, a.permissions, a.append, a.defer) == \
        ("/etc/a", b"plain", 0o644, False, False)
    assert (b.content, b.permissions, b.append, b.defer) == (b"zipped", 0o600, True, True)
    assert (c.content, c.permissions) == (b"x", 0o644)
    warnings = "\n".join(plan.warnings)
    for expected in ("'users' is not run", "unable to shellify type 'int'",
                     "No path provided", "Unknown encoding type rot13",
                     "undecodable permissions 'rwx'"):
        assert expected in warnings, warnings


def test_multipart_parts_in_name_order_and_merged_configs() -> None:
    msg = MIMEMultipart()
    second = MIMEText("#!/bin/sh\necho b\n", "x-shellscript")
    second.add_header("Content-Disposition", "attachment", filename="b.sh")
    first = MIMEText("#!/bin/sh\necho a\n", "x-shellscript")
    first.add_header("Content-Disposition", "attachment", filename="a.sh")
    msg.attach(second)
    msg.attach(first)
    msg.attach(MIMEText("#cloud-config\nruncmd: [echo early]\nbootcmd: [echo x]\n",
                        "cloud-config"))
    msg.attach(MIMEText("#cloud-config\nruncmd: [echo late]\n", "cloud-config"))
    msg.attach(MIMEText("#!/bin/sh\necho plain\n", "plain"))  # guessed by its start
    msg.attach(MIMEText("#cloud-boothook\necho hook\n", "cloud-boothook"))
    msg.attach(MIMEText("#include\nhttp://127.0.0.1/x\n", "x-include-url"))
    plan = parse(msg.as_bytes())
    assert [n for n, _ in plan.scripts] == ["a.sh", "b.sh", "part-005", "runcmd"]
    assert dict(plan.scripts)["runcmd"] == b"#!/bin/sh\necho late\n"  # the later key wins
    assert plan.bootcmd == ("echo x",)
    assert plan.boothooks == (b"#!/bin/sh\necho hook\n",)
    assert any("text/x-include-url" in w for w in plan.warnings), plan.warnings


def test_what_cloud_init_does_not_handle_is_a_warning() -> None:
    plan = parse(b"just some text")
    assert plan.empty and plan.warnings[0].startswith(
        "Unhandled non-multipart (text/x-not-multipart) userdata: 'just some text'")
    assert parse(b"#cloud-config\n[1, 2]\n").warnings == ("cloud-config is not a mapping: "
                                                           "ignored",)
    assert "Failed loading yaml blob" in parse(b"#cloud-config\na: [\n").warnings[0]
    assert parse(None).empty and parse(b"").empty


def test_write_files_paths_stay_inside_the_root() -> None:
    root = Path("/srv/roots/s1/root")
    assert inside(root, "/etc/app.conf") == root / "etc/app.conf"
    assert inside(root, "relative/x") == root / "relative/x"
    assert inside(root, "/../../etc/passwd") == root / "etc/passwd"
    assert inside(root, "/a/./b/../../../c") == root / "c"
