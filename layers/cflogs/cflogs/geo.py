"""GeoIP: country, region and city of a client IP from a MaxMind City database
(GeoLite2-City or GeoIP2-City) read with geoip2.

The database is GEOIP_DB_PATH (a file, or a folder such as a layer under /opt
holding one .mmdb), or GEOIP_DB_S3_URI, downloaded once per process to the
temporary folder. Without one the geo columns stay empty: one warning, nothing
fails. IPs are looked up once each (cached in memory, never stored or logged)."""

from __future__ import annotations

import logging
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import geoip2.database
import geoip2.errors

from . import aws
from .config import Settings

log = logging.getLogger(__name__)

COLUMNS = ("country_code", "country", "region", "city")
NONE = (None, None, None, None)
CACHE_SIZE = 65536

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

    def __init__(self, reader: geoip2.database.Reader | None):
        self.reader = reader
        if reader is None:
            self.lookup = _no_location
            return
        self._city = "City" in reader.metadata().database_type
        self.lookup = lru_cache(maxsize=CACHE_SIZE)(self._lookup)

    @classmethod
    def from_settings(cls, settings: Settings) -> GeoIP:
        """Opens the configured database; without one (or if it cannot be had)
        logs one warning and looks nothing up."""
        try:
            path = database_path(settings)
            if path is not None:
                return cls(geoip2.database.Reader(str(path)))
            log.warning("no GeoIP database (GEOIP_DB_PATH or GEOIP_DB_S3_URI): geo columns empty")
        except Exception as exc:  # noqa: BLE001 - any failure means no geo, not no ingest
            log.warning("GeoIP database unavailable, geo columns empty: %s", exc)
        return cls(None)

    def _lookup(self, ip: str) -> tuple:
        try:
            found = self.reader.city(ip) if self._city else self.reader.country(ip)
        except (geoip2.errors.AddressNotFoundError, ValueError):
            return NONE
        country = found.country
        if not self._city:
            return (country.iso_code, country.name, None, None)
        return (
            country.iso_code,
            country.name,
            found.subdivisions.most_specific.name,
            found.city.name,
        )

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()


def _no_location(ip: str) -> tuple:
    return NONE
