"""Visitor ids: a keyed BLAKE2b hash of host, client IP and user agent.

The key never comes from code: Secrets Manager in AWS (VISITOR_ID_SECRET_ARN),
the environment (VISITOR_ID_SECRET), or a random key file generated once in the
local data folder. No raw IP, nor an unkeyed hash of one, is stored or logged."""

from __future__ import annotations

import os
import secrets
from hashlib import blake2b
from pathlib import Path

from . import aws
from .config import Settings, in_lambda

KEY_FILE = "visitor-id.key"


class VisitorIds:
    """visitor_id(host, ip, user_agent) -> signed 64-bit int (fits a bigint column)."""

    def __init__(self, key: bytes):
        if len(key) < 16:
            raise ValueError("the visitor id key must be at least 16 bytes")
        self._key = blake2b(key, digest_size=32).digest()

    def visitor_id(self, host: str, ip: str, user_agent: str) -> int:
        data = f"{host}\x00{ip}\x00{user_agent}".encode()
        digest = blake2b(data, key=self._key, digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)


def load_key(settings: Settings) -> bytes:
    if settings.visitor_id_secret_arn:
        return aws.get_secret(settings.visitor_id_secret_arn).encode()
    if settings.visitor_id_secret:
        return settings.visitor_id_secret.encode()
    if in_lambda():
        raise RuntimeError("set VISITOR_ID_SECRET_ARN (or VISITOR_ID_SECRET) for visitor ids")
    return _local_key(settings.data_dir / KEY_FILE)


def _local_key(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def visitor_ids(settings: Settings) -> VisitorIds:
    return VisitorIds(load_key(settings))
