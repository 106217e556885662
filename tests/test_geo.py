"""GeoIP against a real .mmdb written for the test: IPv4 and IPv6, a file, a
folder, S3 (moto), and no database at all."""

from __future__ import annotations

import io
import logging
import random

import boto3
import geoip2.database
import geoip2.errors
import pytest
from moto import mock_aws
from netaddr import IPNetwork, IPSet

from cflogs import aws, generate, geo, geodb, parser
from cflogs.config import Settings
from cflogs.enrich import COLUMNS, Enricher
from tests.geodb import write_city_db


@pytest.fixture
def city_db(tmp_path):
    return write_city_db(tmp_path / "GeoLite2-City.mmdb")


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("198.51.100.23", ("DE", "Germany", "Bavaria", "Munich")),
        ("203.0.113.5", ("BR", "Brazil", "São Paulo", "Campinas")),
        ("2001:db8:1::42", ("JP", "Japan", "Tokyo", "Tokyo")),
        ("2001:db8:1:ffff::1", ("JP", "Japan", "Tokyo", "Tokyo")),
        ("2001:db8:2::1", ("FR", "France", None, None)),
        ("192.0.2.1", (None, None, None, None)),  # not in the database
        ("2001:db8:3::1", (None, None, None, None)),
        ("203.0.113.200", (None, None, None, None)),  # outside the /25
        ("-", (None, None, None, None)),
        ("not-an-ip", (None, None, None, None)),
        ("", (None, None, None, None)),
    ],
)
def test_lookup(city_db, ip, expected):
    geoip = geo.GeoIP.from_settings(Settings(geoip_db_path=str(city_db)))
    assert geoip.lookup(ip) == expected
    geoip.close()


def test_lookups_are_cached(city_db):
    geoip = geo.GeoIP.from_settings(Settings(geoip_db_path=str(city_db)))
    first = geoip.lookup("198.51.100.1")
    assert geoip.lookup("198.51.100.1") is first
    assert geoip.lookup.cache_info().hits == 1
    geoip.close()


def as_geoip2_says(reader: geoip2.database.Reader, ip: str) -> tuple:
    try:
        if "City" not in reader.metadata().database_type:
            country = reader.country(ip).country
            return (country.iso_code, country.name, None, None)
        found = reader.city(ip)
    except (geoip2.errors.AddressNotFoundError, ValueError):
        return geo.NONE
    return (
        found.country.iso_code,
        found.country.name,
        found.subdivisions.most_specific.name,
        found.city.name,
    )


@pytest.mark.parametrize("database_type", ["GeoLite2-City", "GeoLite2-Country"])
def test_columns_are_what_geoip2_says(tmp_path, database_type):
    """geo reads maxminddb's records itself; the columns must stay geoip2's."""
    places = geodb.networks()
    # two subdivisions and no city; a network known only by its registration
    places["192.0.2.0/25"] = {
        **geodb.city_record("GB", 0),
        "subdivisions": [{"names": {"en": "England"}}, {"names": {"en": "Brent", "de": "B"}}],
        "city": {"geoname_id": 1},
    }
    places["198.18.0.0/15"] = {"registered_country": {"iso_code": "NL", "names": {"en": "NL"}}}
    path = geodb.write(tmp_path / "world.mmdb", places, database_type)
    addresses = ["192.0.2.200", "2001:db8:ffff::1", "-", "", "not-an-ip", "10.255.0.1"]
    for network in places:
        block = IPNetwork(network)
        addresses += [str(block[0]), str(block[-1]), str(block[block.size // 3])]
    # after the network cache has seen their neighbours
    addresses += ["192.0.2.201", "192.0.2.1", "2001:db8:fffe::1", "10.255.0.2", "::ffff:10.0.0.1"]
    # IPv4 as stored in an IPv6 database (::/96), read after 10.0.0.0/24 was cached
    addresses += ["::10.0.0.1", "::10.0.0.2", "::a00:3"]
    geoip = geo.GeoIP.from_settings(Settings(geoip_db_path=str(path)))
    with geoip2.database.Reader(str(path)) as reader:
        for ip in addresses:
            assert geoip.lookup(ip) == as_geoip2_says(reader, ip), ip
    geoip.close()


def test_places_stay_the_databases_while_the_caches_empty_and_fill(tmp_path, monkeypatch):
    """Every cache (addresses, /24s and /48s, wider networks) emptied again and
    again, networks wider and narrower than a /24, IPv4 in IPv6 forms."""
    monkeypatch.setattr(geo, "CACHE_SIZE", 8)
    places = geodb.networks()
    places["192.0.2.0/26"] = geodb.city_record("FR", 0)
    places["192.0.2.128/25"] = geodb.city_record("FR", 1)
    path = geodb.write(tmp_path / "w.mmdb", places)
    rng = random.Random(5)
    addresses = [f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
                 for _ in range(2000)]  # fmt: skip
    addresses += [f"192.0.2.{n}" for n in range(0, 256, 3)]
    addresses += [f"2001:db8:{rng.randrange(24):x}{rng.randrange(256):02x}::{n:x}"
                  for n in range(500)]  # fmt: skip
    ipv4 = addresses[:500]
    addresses += ["::ffff:" + ip for ip in ipv4] + ["::" + ip for ip in ipv4[::3]]
    rng.shuffle(addresses)
    geoip = geo.GeoIP.from_settings(Settings(geoip_db_path=str(path)))
    with geoip2.database.Reader(str(path)) as reader:
        for ip in addresses:
            assert geoip.lookup(ip) == as_geoip2_says(reader, ip), ip
    assert len(geoip._networks) <= 8 and len(geoip._wider) <= 8
    geoip.close()


def test_every_generated_address_is_located(tmp_path):
    """The demo's and the benchmark's database covers the generator's addresses."""
    path = tmp_path / "E2EXAMPLE8DEMO.2025-06-02-10.a.gz"
    generate.generate_file(path, lines=20_000)
    geoip = geo.GeoIP.from_settings(Settings(geoip_db_path=str(geodb.write(tmp_path / "w.mmdb"))))
    at = parser.RECORD.index("ip")
    with parser.open_lines(io.BytesIO(path.read_bytes())) as lines:
        ips = {record[at] for record in parser.parse(lines, parser.Stats())}
    assert any(":" in ip for ip in ips)
    assert {ip for ip in ips if geoip.lookup(ip)[3] is None} == set()
    # one tuple per place, however many addresses share it
    assert len({id(geoip.lookup(ip)) for ip in ips}) == len(geoip._places)


def test_generated_networks_are_sized_as_geolite2s():
    """Each /16 is cut into networks that cover it exactly, and the addresses in
    networks of each size are GeoLite2-City's shares (geodb.NETWORK_SHARES)."""
    networks = [IPNetwork(n) for n in geodb.networks() if ":" not in n and not n.endswith("/15")]
    blocks = {IPNetwork(f"{network.network}/16").cidr for network in networks}
    addresses: dict[int, int] = {}
    for network in networks:
        addresses[network.prefixlen] = addresses.get(network.prefixlen, 0) + network.size
    assert IPSet(networks) == IPSet(blocks)
    assert sum(addresses.values()) == len(blocks) * 65536
    total = sum(geodb.NETWORK_SHARES.values())
    for length, share in geodb.NETWORK_SHARES.items():
        assert abs(addresses[length] / sum(addresses.values()) - share / total) < 0.02, length


def test_other_kinds_of_database_are_a_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    path = geodb.write(tmp_path / "GeoLite2-ASN.mmdb", database_type="GeoLite2-ASN")
    geoip = geo.GeoIP.from_settings(Settings(geoip_db_path=str(path)))
    assert geoip.lookup("10.0.0.1") == geo.NONE
    (message,) = geo_warnings(caplog)
    assert "GeoLite2-ASN" in message


class CountingReader:
    def __init__(self, reader):
        self.reader, self.reads = reader, 0

    def get_with_prefix_len(self, ip):
        self.reads += 1
        return self.reader.get_with_prefix_len(ip)

    def close(self):
        self.reader.close()


def test_a_network_is_read_once(city_db):
    geoip = geo.GeoIP.from_settings(Settings(geoip_db_path=str(city_db)))
    geoip.reader = counting = CountingReader(geoip.reader)
    munich = ("DE", "Germany", "Bavaria", "Munich")
    tokyo = ("JP", "Japan", "Tokyo", "Tokyo")
    assert [geoip.lookup(f"198.51.100.{n}") for n in (1, 2, 254)] == [munich] * 3
    assert [geoip.lookup(f"2001:db8:1:{n}::9") for n in (1, 2, 3)] == [tokyo] * 3
    assert counting.reads == 2
    # 203.0.113.0/25 is smaller than a /24: each address is read
    assert geoip.lookup("203.0.113.5")[3] == "Campinas"
    assert geoip.lookup("203.0.113.200") == geo.NONE
    assert geoip.lookup("203.0.113.6")[3] == "Campinas"
    assert counting.reads == 5
    # an empty /24 is empty for all its addresses
    assert geoip.lookup("192.0.2.1") == geoip.lookup("192.0.2.2") == geo.NONE
    assert counting.reads == 6
    # networks wider than a /24 or /48: read once for all their /24s or /48s
    amsterdam = ("NL", "Netherlands", "North Holland", "Amsterdam")
    stockholm = ("SE", "Sweden", None, "Stockholm")
    assert [geoip.lookup(ip) for ip in ("198.18.0.1", "198.19.255.2", "198.18.7.3")] == [
        amsterdam
    ] * 3
    assert [geoip.lookup(f"2001:db8:1{n}::1") for n in "0a7f"] == [stockholm] * 4
    assert counting.reads == 8
    # their neighbours are other networks
    assert geoip.lookup("198.20.0.1") == geoip.lookup("2001:db8:20::1") == geo.NONE
    assert geoip.lookup("198.17.255.255") == geo.NONE
    assert counting.reads == 11
    geoip.close()


def test_enterprise_database_gives_city_columns(tmp_path):
    path = geodb.write(tmp_path / "GeoIP2-Enterprise.mmdb", database_type="GeoIP2-Enterprise")
    geoip = geo.GeoIP.from_settings(Settings(geoip_db_path=str(path)))
    assert geoip.lookup("10.36.1.1") == ("IN", "India", "Maharashtra", "Mumbai")
    geoip.close()


def test_folder_with_a_database(city_db):
    geoip = geo.GeoIP.from_settings(Settings(geoip_db_path=str(city_db.parent)))
    assert geoip.lookup("2001:db8:1::1")[0] == "JP"


def test_country_database_gives_countries_only(tmp_path):
    path = write_city_db(tmp_path / "GeoLite2-Country.mmdb", database_type="GeoLite2-Country")
    geoip = geo.GeoIP.from_settings(Settings(geoip_db_path=str(path)))
    assert geoip.lookup("198.51.100.9") == ("DE", "Germany", None, None)


def geo_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "cflogs.geo"]


def test_no_database_one_warning_and_empty_columns(caplog):
    caplog.set_level(logging.WARNING)
    enricher = Enricher(Settings())
    rows = [enricher.columns("www.example.com", "", "", "curl/8", "198.51.100.1") for _ in "abc"]
    assert {row[COLUMNS.index("country_code")] for row in rows} == {None}
    assert len(geo_warnings(caplog)) == 1


def test_missing_file_one_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    enricher = Enricher(Settings(geoip_db_path=str(tmp_path / "absent.mmdb")))
    for _ in range(3):
        assert enricher.geo.lookup("198.51.100.1") == geo.NONE
    (message,) = geo_warnings(caplog)
    assert "absent.mmdb" in message


def test_enricher_fills_geo_columns(city_db):
    enricher = Enricher(Settings(geoip_db_path=str(city_db)))
    values = enricher.columns("www.example.com", "", "", "curl/8", "2001:db8:1::9")
    row = dict(zip(COLUMNS, values, strict=True))
    assert (row["country_code"], row["country"], row["region"], row["city"]) == (
        "JP",
        "Japan",
        "Tokyo",
        "Tokyo",
    )
    enricher.close()


@pytest.fixture
def s3(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(geo, "_downloads", {})
    with mock_aws():
        aws.reset_clients()
        yield boto3.client("s3")
    aws.reset_clients()


def test_s3_database_downloaded_once_per_process(s3, city_db, tmp_path, monkeypatch):
    monkeypatch.setattr(geo.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    s3.create_bucket(Bucket="geo-bucket")
    s3.upload_file(str(city_db), "geo-bucket", "maxmind/GeoLite2-City.mmdb")
    settings = Settings(geoip_db_s3_uri="s3://geo-bucket/maxmind/GeoLite2-City.mmdb")

    first = geo.GeoIP.from_settings(settings)
    assert first.lookup("198.51.100.3")[3] == "Munich"
    assert (tmp_path / "tmp" / "cflogs-geoip" / "GeoLite2-City.mmdb").exists()

    # A second reader in the same process does not fetch it again.
    s3.delete_object(Bucket="geo-bucket", Key="maxmind/GeoLite2-City.mmdb")
    second = geo.GeoIP.from_settings(settings)
    assert second.lookup("2001:db8:1::1")[0] == "JP"


def test_s3_database_missing_one_warning(s3, caplog):
    caplog.set_level(logging.WARNING)
    s3.create_bucket(Bucket="geo-bucket")
    geoip = geo.GeoIP.from_settings(Settings(geoip_db_s3_uri="s3://geo-bucket/none.mmdb"))
    assert geoip.lookup("198.51.100.3") == geo.NONE
    assert len(geo_warnings(caplog)) == 1


def test_bad_s3_uri_is_a_warning(caplog):
    caplog.set_level(logging.WARNING)
    geoip = geo.GeoIP.from_settings(Settings(geoip_db_s3_uri="https://example.com/db.mmdb"))
    assert geoip.lookup("198.51.100.3") == geo.NONE
    (message,) = geo_warnings(caplog)
    assert "s3://bucket/key" in message
