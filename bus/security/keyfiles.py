"""Ed25519 private keys in files: PEM (PKCS#8, unencrypted), readable by their owner only.

The bus's own keys (tokens, replies) and the agencies' keys are kept alike; this is the one
place that writes and reads them.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["read_key", "write_new_key"]


def write_new_key(path: Path, *, replace: bool = False) -> Ed25519PrivateKey:
    """Generate a key and write it to ``path`` (mode 0600), making its directory.

    Without ``replace`` the file is created exclusively: FileExistsError if it exists, so two
    processes starting together never each write a key of their own.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
    descriptor = os.open(path, flags, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    return key


def read_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key in ``path``; ValueError saying what the file holds instead."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key
