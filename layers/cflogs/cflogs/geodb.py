"""A MaxMind City database (.mmdb) for the addresses cflogs.generate uses, written
with mmdb-writer (a development dependency), so that the demo and the benchmark
look every page view up as a deployment with GeoLite2-City would.

Each country's blocks (10.{12 i}-{12 i + 11}.0.0/16 and 2001:db8:{i}00::/40 for
the i-th of generate.COUNTRIES) are split between a few of its cities; the
crawlers' block, 10.250.0.0/15, is a data centre. Each IPv4 /16 is cut into
networks of /16 to /24 as GeoLite2-City's are (NETWORK_SHARES), since geo reads
a network's record once; the IPv6 ones are /44s, narrower than GeoLite2-City's
(mostly /29 to /40). Records have every field of GeoLite2-City's and every name
in its eight languages (the English name marked with the language), as its large
cities do: a lookup decodes at least as much as from the real database (8
microseconds here, against 6 for GeoLite2-City's record of a random public
address)."""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path

from .generate import COUNTRIES

LANGUAGES = ("de", "en", "es", "fr", "ja", "pt-BR", "ru", "zh-CN")

CONTINENTS = {"NA": "North America", "SA": "South America", "EU": "Europe", "AS": "Asia",
              "OC": "Oceania", "AF": "Africa"}  # fmt: skip

# code: country, continent, ((region, city, latitude, longitude, time zone), ...)
PLACES = {
    "US": ("United States", "NA", (
        ("Virginia", "Ashburn", 39.04, -77.49, "America/New_York"),
        ("California", "Los Angeles", 34.05, -118.24, "America/Los_Angeles"),
        ("Illinois", "Chicago", 41.88, -87.63, "America/Chicago"))),
    "GB": ("United Kingdom", "EU", (
        ("England", "London", 51.51, -0.13, "Europe/London"),
        ("Scotland", "Edinburgh", 55.95, -3.19, "Europe/London"))),
    "DE": ("Germany", "EU", (
        ("Hesse", "Frankfurt am Main", 50.11, 8.68, "Europe/Berlin"),
        ("Bavaria", "Munich", 48.14, 11.58, "Europe/Berlin"))),
    "IN": ("India", "AS", (
        ("Maharashtra", "Mumbai", 19.08, 72.88, "Asia/Kolkata"),
        ("Karnataka", "Bengaluru", 12.97, 77.59, "Asia/Kolkata"))),
    "FR": ("France", "EU", (
        ("Île-de-France", "Paris", 48.86, 2.35, "Europe/Paris"),
        ("Provence-Alpes-Côte d'Azur", "Marseille", 43.30, 5.37, "Europe/Paris"))),
    "CA": ("Canada", "NA", (
        ("Ontario", "Toronto", 43.65, -79.38, "America/Toronto"),
        ("Quebec", "Montreal", 45.50, -73.57, "America/Toronto"))),
    "BR": ("Brazil", "SA", (
        ("São Paulo", "São Paulo", -23.55, -46.63, "America/Sao_Paulo"),
        ("Rio de Janeiro", "Rio de Janeiro", -22.91, -43.17, "America/Sao_Paulo"))),
    "JP": ("Japan", "AS", (
        ("Tokyo", "Tokyo", 35.68, 139.69, "Asia/Tokyo"),
        ("Osaka", "Osaka", 34.69, 135.50, "Asia/Tokyo"))),
    "AU": ("Australia", "OC", (
        ("New South Wales", "Sydney", -33.87, 151.21, "Australia/Sydney"),
        ("Victoria", "Melbourne", -37.81, 144.96, "Australia/Melbourne"))),
    "NL": ("Netherlands", "EU", (
        ("North Holland", "Amsterdam", 52.37, 4.90, "Europe/Amsterdam"),
        ("South Holland", "Rotterdam", 51.92, 4.48, "Europe/Amsterdam"))),
    "ES": ("Spain", "EU", (
        ("Madrid", "Madrid", 40.42, -3.70, "Europe/Madrid"),
        ("Catalonia", "Barcelona", 41.39, 2.17, "Europe/Madrid"))),
    "IT": ("Italy", "EU", (
        ("Lombardy", "Milan", 45.46, 9.19, "Europe/Rome"),
        ("Lazio", "Rome", 41.90, 12.50, "Europe/Rome"))),
    "PL": ("Poland", "EU", (("Mazovia", "Warsaw", 52.23, 21.01, "Europe/Warsaw"),)),
    "SE": ("Sweden", "EU", (("Stockholm County", "Stockholm", 59.33, 18.07, "Europe/Stockholm"),)),
    "SG": ("Singapore", "AS", ((None, "Singapore", 1.29, 103.85, "Asia/Singapore"),)),
    "KR": ("South Korea", "AS", (("Seoul", "Seoul", 37.57, 126.98, "Asia/Seoul"),)),
    "MX": ("Mexico", "NA", (
        ("Mexico City", "Mexico City", 19.43, -99.13, "America/Mexico_City"),
        ("Querétaro", "Querétaro", 20.59, -100.39, "America/Mexico_City"))),
    "ZA": ("South Africa", "AF", (
        ("Gauteng", "Johannesburg", -26.20, 28.05, "Africa/Johannesburg"),)),
    "ID": ("Indonesia", "AS", (("Jakarta", "Jakarta", -6.21, 106.85, "Asia/Jakarta"),)),
    "NG": ("Nigeria", "AF", (("Lagos", "Lagos", 6.52, 3.38, "Africa/Lagos"),)),
}  # fmt: skip
CRAWLERS = ("US", 2)  # the crawlers' block is in the US's third city
# Located IPv4 addresses by the prefix length of their network in GeoLite2-City
# (2018 edition, 20,000 random public addresses), /16 to /24: 79% of them. The
# other 19% are in networks wider than a /16 and 3% in narrower than a /24.
NETWORK_SHARES = {16: 2653, 17: 1187, 18: 1078, 19: 2018, 20: 2000, 21: 1692, 22: 1918,
                  23: 1736, 24: 1432}  # fmt: skip


def _names(name: str) -> dict:
    return {code: name if code == "en" else f"{name} [{code}]" for code in LANGUAGES}


def city_record(code: str, city_index: int) -> dict:
    """What GeoLite2-City holds for an address in that country's city."""
    country_name, continent, cities = PLACES[code]
    region, city, latitude, longitude, time_zone = cities[city_index % len(cities)]
    place_id = 1_000_000 + 1_000 * list(PLACES).index(code)
    continent_id = 6_255_140 + list(CONTINENTS).index(continent)
    country = {"geoname_id": place_id, "iso_code": code, "names": _names(country_name)}
    if continent == "EU":
        country["is_in_european_union"] = code != "GB"
    record = {
        "continent": {"code": continent, "geoname_id": continent_id,
                      "names": _names(CONTINENTS[continent])},
        "country": country,
        "registered_country": country,
        "city": {"geoname_id": place_id + 10 + city_index, "names": _names(city)},
        "location": {"accuracy_radius": 20, "latitude": latitude, "longitude": longitude,
                     "time_zone": time_zone},
        "postal": {"code": f"{place_id % 100_000:05d}"},
    }  # fmt: skip
    if region:
        record["subdivisions"] = [
            {"geoname_id": place_id + 1 + city_index, "iso_code": region[:3].upper(),
             "names": _names(region)}
        ]  # fmt: skip
    return record


def carve(block: str, rng: random.Random) -> list[str]:
    """The /16 block as networks of /16 to /24, in NETWORK_SHARES's proportions of
    addresses: each network is kept whole with the chance that an address still
    to be placed is in a network of that size, else split in two."""
    keep, left = {}, sum(NETWORK_SHARES.values())
    for length, share in NETWORK_SHARES.items():
        keep[length] = share / left
        left -= share
    found, todo = [], [ipaddress.ip_network(block)]
    while todo:
        network = todo.pop()
        if rng.random() < keep[network.prefixlen]:
            found.append(str(network))
        else:
            todo.extend(network.subnets())
    return found


def networks() -> dict[str, dict]:
    """network -> record, for every block the generator takes addresses from."""
    found = {}
    rng = random.Random(1)
    for index, (code, *_) in enumerate(COUNTRIES):
        for block in range(12):
            record = city_record(code, block)
            for network in carve(f"10.{index * 12 + block}.0.0/16", rng):
                found[network] = record
        for block in range(16):
            found[f"2001:db8:{index:x}{block:x}0::/44"] = city_record(code, block)
    found["10.250.0.0/15"] = city_record(*CRAWLERS)
    return found


def write(path: Path, places: dict[str, dict] | None = None, database_type: str = "GeoLite2-City"):
    """Write places (network -> record; the generator's world if None) as .mmdb."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type=database_type,
        languages=list(LANGUAGES),
        description="cflogs generated places",
    )
    for network, record in (places or networks()).items():
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return path
