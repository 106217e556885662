"""Referrers: host, path, category and source, with search terms where the
referrer carries them.

Categories: direct (no usable referrer), internal (the page's own host, or one of
OWN_DOMAINS or their subdomains), search, social, email, ai, paid (known ad
networks here; campaigns can make a page view paid too, see campaign.py), and
referral (any other site). Sources come from the package's referrers.yml, or
from a Snowplow referers.yml-format file named by REFERERS_YML."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import yaml

COLUMNS = ("referrer_host", "referrer_path", "referrer_category", "referrer_source", "search_terms")
CATEGORIES = ("direct", "internal", "search", "social", "email", "ai", "paid", "referral")
TERMS_LENGTH = 500
DIRECT = (None, None, "direct", None, None)
# A `name.*` domain matches `name` followed by at most this many labels of at
# most three letters each (de, com, co.uk, com.br).
COUNTRY_LABELS = 2
_HOST = re.compile(r"[\w.:-]+")


@dataclass(frozen=True)
class Source:
    category: str
    name: str
    parameters: tuple[str, ...]


def load(path: str | Path | None = None) -> dict:
    """A referers.yml-format mapping: the package's own list, or the file at path."""
    if path is None:
        text = resources.files("cflogs").joinpath("data/referrers.yml").read_text()
    else:
        text = Path(path).read_text()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader) or {}


class Referrers:
    """Classifies referrers against a list of sources and the site's own domains."""

    def __init__(self, sources: dict, own_domains: tuple[str, ...] = ()):
        # host -> [(path prefix, Source)], longest prefix first; label -> Source
        self.hosts: dict[str, list[tuple[str, Source]]] = {}
        self.any_country: dict[str, Source] = {}
        for category, entries in sources.items():
            category = category if category in CATEGORIES else "referral"
            for name, entry in (entries or {}).items():
                entry = entry or {}
                source = Source(category, str(name), tuple(entry.get("parameters") or ()))
                for domain in entry.get("domains") or ():
                    self._add(str(domain).strip().lower(), source)
        for prefixes in self.hosts.values():
            prefixes.sort(key=lambda item: len(item[0]), reverse=True)
        self.own_domains = frozenset(d.strip().lower().strip(".") for d in own_domains if d)

    @classmethod
    def from_settings(cls, settings) -> Referrers:
        return cls(load(settings.referers_yml), settings.own_domains)

    def _add(self, domain: str, source: Source) -> None:
        host, _, path = domain.partition("/")
        host = host.removeprefix("www.")
        if host.endswith(".*") and not path:
            self.any_country.setdefault(host[:-2], source)
            return
        prefixes = self.hosts.setdefault(host, [])
        if all(prefix != "/" + path for prefix, _ in prefixes):
            prefixes.append(("/" + path if path else "", source))

    def columns(self, referrer: str, host: str) -> tuple:
        """COLUMNS of a decoded referrer (empty for none) seen on a page of `host`."""
        if not referrer or referrer == "-":
            return DIRECT
        parts = _split(referrer.strip())
        ref_host = parts.hostname.rstrip(".") if parts and parts.hostname else None
        if not ref_host or not _HOST.fullmatch(ref_host):
            return DIRECT
        path = parts.path or None
        labels = ref_host.split(".")
        if self._internal(ref_host, labels, host.lower()):
            return (ref_host, path, "internal", None, None)
        source = self.source(labels, parts.path)
        if source is None:
            return (ref_host, path, "referral", None, None)
        terms = _terms(parts.query, source.parameters) if source.parameters else None
        return (ref_host, path, source.category, source.name, terms)

    def _internal(self, ref_host: str, labels: list[str], host: str) -> bool:
        if ref_host == host or ref_host.removeprefix("www.") == host.removeprefix("www."):
            return True
        if self.own_domains:
            return any(".".join(labels[i:]) in self.own_domains for i in range(len(labels)))
        return False

    def source(self, labels: list[str], path: str) -> Source | None:
        """The most specific source for a host: exact host first, then each parent
        domain in turn (m.facebook.com -> facebook.com), a `name.*` entry matching
        where only a country ending is left (www.google.co.uk -> google)."""
        for i in range(len(labels) - 1):
            prefixes = self.hosts.get(".".join(labels[i:]))
            if prefixes:
                for prefix, source in prefixes:
                    if not prefix or path == prefix or path.startswith(prefix + "/"):
                        return source
            rest = labels[i + 1 :]
            if len(rest) <= COUNTRY_LABELS and all(len(label) <= 3 for label in rest):
                source = self.any_country.get(labels[i])
                if source:
                    return source
        return None


def _split(referrer: str):
    """urlsplit, also for a referrer without a scheme (`www.example.com/page`);
    None when it is not a URL at all."""
    try:
        parts = urlsplit(referrer)
        if not parts.netloc and "://" not in referrer and not referrer.startswith("/"):
            parts = urlsplit("//" + referrer)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return None
    return parts


def _terms(query: str, parameters: tuple[str, ...]) -> str | None:
    if not query:
        return None
    values = dict(parse_qsl(query)[::-1])  # reversed: the first occurrence wins
    for name in parameters:
        value = values.get(name, "").strip()
        if value:
            return value[:TERMS_LENGTH]
    return None
