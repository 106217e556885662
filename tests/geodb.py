"""A small real MaxMind City database for tests, written with mmdb-writer."""

from __future__ import annotations

from pathlib import Path

from cflogs import geodb

# network -> (country code, country, region, city)
PLACES = {
    "198.51.100.0/24": ("DE", "Germany", "Bavaria", "Munich"),
    "203.0.113.0/25": ("BR", "Brazil", "São Paulo", "Campinas"),
    "2001:db8:1::/48": ("JP", "Japan", "Tokyo", "Tokyo"),
    "2001:db8:2::/48": ("FR", "France", None, None),
    "198.18.0.0/15": ("NL", "Netherlands", "North Holland", "Amsterdam"),
    "2001:db8:10::/44": ("SE", "Sweden", None, "Stockholm"),
}


def record(code: str, country: str, region: str | None, city: str | None) -> dict:
    data: dict = {"country": {"iso_code": code, "names": {"en": country}}}
    if region:
        data["subdivisions"] = [{"iso_code": region[:2].upper(), "names": {"en": region}}]
    if city:
        data["city"] = {"names": {"en": city}}
    return data


def write_city_db(path: Path, database_type: str = "GeoLite2-City") -> Path:
    places = {network: record(*place) for network, place in PLACES.items()}
    return geodb.write(path, places, database_type)
