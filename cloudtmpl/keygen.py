"""The key pairs cloudtmpl generates for a stack's KeyPair without a ``public_key``:
an Ed25519 key whose private half stays in the project's ``.cloudtmpl/keys``."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519


def generated_public_key(keys_dir: Path, name: str) -> str:
    """The public half of the stack's generated key ``name``, creating it if needed.

    The private key is written once, with mode 0600, to ``keys_dir/<name>.pem``;
    a rerun after a crash reuses it, so a key pair imported by the killed run
    still matches.
    """
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = keys_dir / f"{name}.pem"
    if path.exists():
        private = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    else:
        private = ed25519.Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return public.decode() + f" {name}"
