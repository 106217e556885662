"""GeoIP: country, region and city of a client IP from a MaxMind City database
(GeoLite2-City, GeoIP2-City or GeoIP2-Enterprise) read with maxminddb, MaxMind's
reader beneath geoip2: its records as dicts cost less than half of geoip2's
model objects (11 against 26 microseconds a new address), and the columns are
what geoip2's City model says (tests compare the two).

The database is GEOIP_DB_PATH (a file, or a folder such as a layer under /opt
holding one .mmdb), or GEOIP_DB_S3_URI, downloaded once per process to the
temporary folder. Without one the geo columns stay empty: one warning, nothing
fails. IPs are looked up once each (cached in memory, never stored or logged),
and a network of the database that is a /24 (IPv4) or /48 (IPv6) or wider is read
once: its other addresses have the same place without decoding the record again
(the decoding is most of a lookup's cost)."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from functools import lru_cache
from pathlib import Path

import maxminddb

from . import aws, parser
from .config import Settings

log = logging.getLogger(__name__)

COLUMNS = ("country_code", "country", "region", "city")
NONE = (None, None, None, None)
CACHE_SIZE = 65536
# length of a packed address (IPv4, IPv6) -> how many of its bytes key the first
# network cache: a /24 or a /48
NETWORK_BYTES = {4: 3, 16: 6}
_SPLIT = ()  # in the /24 or /48 cache: the database splits it into smaller networks

_downloads: dict[str, Path] = {}


def download(uri: str) -> Path:
    """The local copy of an s3://bucket/key object, fetched once per process."""
    path = _downloads.get(uri)
    if path is not None and path.exists():
        return path
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not key:
        raise ValueError(f"GEOIP_DB_S3_URI must look like s3://bucket/key, not {uri!r}")
    folder = Path(tempfile.gettempdir()) / "cflogs-geoip"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / Path(key).name
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    aws.client("s3").download_file(bucket, key, str(partial))
    os.replace(partial, path)
    _downloads[uri] = path
    return path


def database_path(settings: Settings) -> Path | None:
    """Where the database is, fetching it first when it is in S3; None if unset."""
    if settings.geoip_db_path:
        path = Path(settings.geoip_db_path)
        if path.is_dir():
            found = sorted(path.glob("*City*.mmdb")) or sorted(path.glob("*.mmdb"))
            if not found:
                raise FileNotFoundError(f"no .mmdb file in {path}")
            return found[0]
        return path
    if settings.geoip_db_s3_uri:
        return download(settings.geoip_db_s3_uri)
    return None


class GeoIP:
    """lookup(ip) -> (country_code, country, region, city), all None when unknown."""

    def __init__(self, reader: maxminddb.Reader | None):
        self.reader = reader
        if reader is None:
            self.lookup = _no_location
            return
        kind = reader.metadata().database_type
        self._city = "City" in kind or "Enterprise" in kind  # Enterprise: City and more
        if not self._city and "Country" not in kind:
            reader.close()
            raise ValueError(f"a City, Enterprise or Country database is needed, not {kind}")
        # one tuple per place, not one per address: 45,000 addresses are a few places
        self._places: dict[tuple, tuple] = {}
        # Places of the networks read so far. First: the address's /24 or /48 (its
        # first NETWORK_BYTES) -> place, where the database's network is that or
        # wider (_SPLIT where it is smaller). Then, for networks wider than that:
        # (address bits, prefix length, the address's first `prefix length` bits)
        # -> place, with the prefix lengths seen for each kind of address (an
        # address is in one network only, so at most one of them finds it).
        self._networks: dict[bytes, tuple] = {}
        self._wider: dict[tuple[int, int, int], tuple] = {}
        self._prefixes: dict[int, set[int]] = {32: set(), 128: set()}
        self.lookup = lru_cache(maxsize=CACHE_SIZE)(self._lookup)

    @classmethod
    def from_settings(cls, settings: Settings) -> GeoIP:
        """Opens the configured database; without one (or if it cannot be had)
        logs one warning and looks nothing up."""
        try:
            path = database_path(settings)
            if path is not None:
                return cls(maxminddb.open_database(str(path)))
            log.warning("no GeoIP database (GEOIP_DB_PATH or GEOIP_DB_S3_URI): geo columns empty")
        except Exception as exc:  # noqa: BLE001 - any failure means no geo, not no ingest
            log.warning("GeoIP database unavailable, geo columns empty: %s", exc)
        return cls(None)

    def _lookup(self, ip: str) -> tuple:
        try:
            packed = socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)
        except (OSError, ValueError):
            return NONE  # not an address
        network = packed[: NETWORK_BYTES[len(packed)]]
        network_bits = 8 * len(network)  # 24 or 48
        place = self._networks.get(network)
        if place is None:
            place = self._wider_place(packed)
            if place is not None:
                parser.remember(self._networks, network, place, CACHE_SIZE)
                return place
        elif place is not _SPLIT:
            return place
        try:
            found, prefix = self.reader.get_with_prefix_len(ip)
        except ValueError:  # IPv6 in an IPv4-only database
            return NONE
        place = self._place(found) if found else NONE
        # An IPv4 address's prefix counts from the IPv4 part of an IPv6 database:
        # 0 (below 0 with some maxminddb versions) when its network is wider.
        prefix = max(prefix, 0)
        if prefix < network_bits:
            bits = 8 * len(packed)
            self._prefixes[bits].add(prefix)
            key = (bits, prefix, int.from_bytes(packed, "big") >> (bits - prefix))
            parser.remember(self._wider, key, place, CACHE_SIZE)
        # A /24 or /48 split into smaller networks is in no wider one: its other
        # addresses go straight to the database.
        entry = place if prefix <= network_bits else _SPLIT
        parser.remember(self._networks, network, entry, CACHE_SIZE)
        return place

    def _wider_place(self, packed: bytes) -> tuple | None:
        """The place of a network wider than a /24 or /48 read before, if the
        packed address is in one."""
        bits, number = 8 * len(packed), int.from_bytes(packed, "big")
        for prefix in self._prefixes[bits]:
            place = self._wider.get((bits, prefix, number >> (bits - prefix)))
            if place is not None:
                return place
        return None

    def _place(self, found: dict) -> tuple:
        country = found.get("country", {})
        if self._city:
            subdivisions = found.get("subdivisions")  # most specific last
            region = _english(subdivisions[-1]) if subdivisions else None
            city = _english(found.get("city", {}))
        else:
            region = city = None
        place = (country.get("iso_code"), _english(country), region, city)
        return self._places.setdefault(place, place)

    def clear(self) -> None:
        if self.reader is not None:
            self.lookup.cache_clear()
            self._networks.clear()
            self._wider.clear()
            for prefixes in self._prefixes.values():
                prefixes.clear()

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()


def _no_location(ip: str) -> tuple:
    return NONE


def _english(entity: dict) -> str | None:
    names = entity.get("names")
    return names.get("en") if names else None
