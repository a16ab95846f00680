"""What Secrets Manager refuses where moto does not: a secret scheduled for deletion.

AWS keeps a deleted secret's name through its recovery window: ``CreateSecret`` of that
name is refused ("You can't create this secret because a secret with this name is
already scheduled for deletion.") and so are new values for it (``PutSecretValue``,
``UpdateSecret``), all with ``InvalidRequestException``.  moto answers the create with
``ResourceExistsException`` and takes the new values.  Before those actions reach moto,
the layer asks moto (in-process, ``DescribeSecret``) whether the secret is scheduled
for deletion, and answers as AWS does if it is.
"""

from __future__ import annotations

import io
import json
from typing import Any

from cloudtmpl_sandbox.aws_wsgi import Environ, WSGIApp, call_app, read_body

_REFUSED = {
    "CreateSecret": "You can't create this secret because a secret with this name is "
                    "already scheduled for deletion.",
    "PutSecretValue": "You can't perform this operation on the secret because it was "
                      "marked for deletion.",
    "UpdateSecret": "You can't perform this operation on the secret because it was "
                    "marked for deletion.",
}
Answer = tuple[str, list[tuple[str, str]], bytes]


def _with_body(environ: Environ, body: bytes) -> None:
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))


def refusal(app: WSGIApp, environ: Environ) -> Answer | None:
    """AWS's answer to a request moto would wrongly take; None: pass it on (its body
    put back for moto to read)."""
    action = str(environ.get("HTTP_X_AMZ_TARGET", "")).rpartition(".")[2]
    if action not in _REFUSED:
        return None
    body = read_body(environ)
    _with_body(environ, body)
    try:
        data: Any = json.loads(body or b"{}")
    except ValueError:
        return None
    name = data.get("Name" if action == "CreateSecret" else "SecretId") \
        if isinstance(data, dict) else None
    if not isinstance(name, str):
        return None
    sub = dict(environ)
    sub["HTTP_X_AMZ_TARGET"] = "secretsmanager.DescribeSecret"
    _with_body(sub, json.dumps({"SecretId": name}).encode())
    status, _, answer = call_app(app, sub)
    try:
        described = json.loads(answer) if status.startswith("2") else {}
    except ValueError:
        described = {}
    if not isinstance(described, dict) or not described.get("DeletedDate"):
        return None
    error = {"__type": "InvalidRequestException", "message": _REFUSED[action]}
    return ("400 Bad Request", [("Content-Type", "application/x-amz-json-1.1")],
            json.dumps(error).encode())
