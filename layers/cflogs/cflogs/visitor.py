"""Visitor ids: a keyed BLAKE2b hash of host, client IP and user agent.

Modes (VISITOR_ID_MODE): `stable` (default), one id per host, IP and user agent
for as long as the key stays; `daily`, the hash key is derived from the secret
and the request's UTC date, so the same person gets a new id every day: visitors
last one day, a session that crosses midnight UTC becomes two, and ids of
different days cannot be linked without the secret. Derived, not random and
forgotten, so that re-ingesting a file gives the same ids.

The key never comes from code: Secrets Manager in AWS (VISITOR_ID_SECRET_ARN),
the environment (VISITOR_ID_SECRET), or a random key file generated once in the
local data folder. No raw IP, nor an unkeyed hash of one, is stored or logged."""

from __future__ import annotations

import math
import os
import secrets
from collections import Counter
from functools import lru_cache
from hashlib import blake2b
from pathlib import Path

from . import aws, parser
from .config import Settings, in_lambda

KEY_FILE = "visitor-id.key"
MODES = ("stable", "daily")
# Below this, a key could be guessed (a word, a repeated character, a short PIN)
# and with it every visitor id tried against every address. The estimate is the
# key's length times the Shannon entropy of its characters: a random 64-digit hex
# key has about 250 bits; `passwordpassword`, 44.
MIN_KEY_BITS = 64


class VisitorIds:
    """visitor_id(host, ip, user_agent, date) -> signed 64-bit int (fits a bigint
    column); date ('YYYY-MM-DD', UTC) is required in daily mode, unused otherwise."""

    def __init__(self, key: bytes, mode: str = "stable"):
        if len(key) < 16:
            raise ValueError("the visitor id key must be at least 16 bytes")
        if key_bits(key) < MIN_KEY_BITS:
            raise ValueError(
                "the visitor id key is too easy to guess: use a random one, for example "
                "`python3 -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        if mode not in MODES:
            raise ValueError(f"VISITOR_ID_MODE must be one of {', '.join(MODES)}, not {mode!r}")
        self._key = blake2b(key, digest_size=32).digest()
        self.mode = mode
        # Keyed hashers are set up once and copied per id (cheaper than keying each time).
        self._stable = blake2b(key=self._key, digest_size=8)
        self._daily = lru_cache(maxsize=64)(self._day_hasher)
        # A hit costs a tenth of a hash. Sized for the visitors of a large file (a
        # 500,000-line file can have 45,000): a smaller cache thrashes.
        self._cached = lru_cache(maxsize=65536)(self._visitor_id)

    def visitor_id(self, host: str, ip: str, user_agent: str, date: str | None = None) -> int:
        if len(user_agent) > parser.LONGEST_CACHED:
            return self._visitor_id(host, ip, user_agent, date)
        return self._cached(host, ip, user_agent, date)

    def clear(self) -> None:
        self._cached.cache_clear()

    def _day_hasher(self, date: str):
        day_key = blake2b(date.encode(), key=self._key, digest_size=32, person=b"cflogs-day")
        return blake2b(key=day_key.digest(), digest_size=8)

    def _visitor_id(self, host: str, ip: str, user_agent: str, date: str | None = None) -> int:
        if self.mode == "daily":
            if not date:
                raise ValueError("daily visitor ids need the request's date")
            hasher = self._daily(date).copy()
        else:
            hasher = self._stable.copy()
        hasher.update(f"{host}\x00{ip}\x00{user_agent}".encode())
        return int.from_bytes(hasher.digest(), "big", signed=True)


def key_bits(key: bytes) -> float:
    """A rough strength estimate: length times the entropy of the byte counts."""
    counts = Counter(key).values()
    return -sum(n * math.log2(n / len(key)) for n in counts)


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
    return VisitorIds(load_key(settings), settings.visitor_id_mode)
