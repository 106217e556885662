"""Enrichment of page views: who (user agent, bot), where (GeoIP), how they came
(referrer, campaign). See useragent.py, geo.py, referrer.py and campaign.py for
the rules; this module caches them by the values as logged, before decoding, so
that a repeated user agent or referrer costs one dictionary lookup."""

from __future__ import annotations

import logging

from . import campaign, geo, parser, referrer, useragent, values
from .config import Settings

log = logging.getLogger(__name__)

# The page_views columns an Enricher fills, in this order.
COLUMNS = useragent.COLUMNS + geo.COLUMNS + referrer.COLUMNS + campaign.COLUMNS
# Entries per cache; a full cache is emptied and fills again.
CACHE_ENTRIES = 16384
# What a page view gets when its user agent, or its referrer and query, cannot be
# read at all (a fault of ours or of a library's, met on someone's odd value).
UNREADABLE_AGENT = (False, None, "other", None, None, "Other", None, "Other", None)
UNREADABLE_SOURCE = (None, None, "referral", None, None) + (None,) * len(campaign.COLUMNS)
SOURCE_COLUMNS = referrer.COLUMNS + campaign.COLUMNS


class Enricher:
    """Built once per process from Settings; its caches serve every file the
    process loads. The GeoIP database is opened (or downloaded) on the first page
    view, so that a cold start that ingests nothing does not pay for it.

    ingest's loop reads the caches directly (`agents.get(raw) or agent(raw)`);
    columns() is the same for one page view."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.referrers = referrer.Referrers.from_settings(settings)
        self._geo: geo.GeoIP | None = None
        # user agent as logged -> (decoded, useragent.COLUMNS)
        self.agents: dict[str, tuple[str, tuple]] = {}
        # (page host, referrer as logged, query as logged) -> (query for the row or
        # None, referrer.COLUMNS + campaign.COLUMNS)
        self.sources: dict[tuple[str, str, str], tuple[str | None, tuple]] = {}

    @property
    def geo(self) -> geo.GeoIP:
        if self._geo is None:
            self._geo = geo.GeoIP.from_settings(self.settings)
        return self._geo

    def agent(self, logged: str) -> tuple[str, tuple]:
        """(the user agent decoded, its useragent.COLUMNS)."""
        found = self.agents.get(logged)
        if found is None:
            decoded = parser.decode(logged)
            try:
                agent = useragent.columns(decoded)
                found = (decoded, values.clean_columns(useragent.COLUMNS, agent))
            except Exception as exc:  # noqa: BLE001 - one odd value must not fail a file
                log.warning("user agent not readable (%s): %r", exc.__class__.__name__,
                            parser.redact(decoded)[:200])  # fmt: skip
                found = (decoded, UNREADABLE_AGENT)
            parser.remember(self.agents, logged, found, CACHE_ENTRIES, len(logged))
        return found

    def source(self, host: str, logged_referrer: str, logged_query: str) -> tuple:
        """(the query with CloudFront's extra encoding removed, or None;
        referrer.COLUMNS + campaign.COLUMNS) of a page view on host."""
        key = (host, logged_referrer, logged_query)
        found = self.sources.get(key)
        if found is None:
            query = parser.decode_query(logged_query)
            try:
                utm, hint, platform = campaign.parse(query)
                source = self.referrers.columns(parser.decode(logged_referrer), host)
                if hint is not None:
                    source = campaign.apply(source, hint, platform)
                found = (query or None, values.clean_columns(SOURCE_COLUMNS, source + utm))
            except Exception as exc:  # noqa: BLE001 - one odd value must not fail a file
                log.warning("referrer or query not readable (%s): %r", exc.__class__.__name__,
                            parser.redact(f"{logged_referrer} {logged_query}")[:200])  # fmt: skip
                found = (query or None, UNREADABLE_SOURCE)
            longest = max(len(logged_referrer), len(logged_query))
            parser.remember(self.sources, key, found, CACHE_ENTRIES, longest)
        return found

    def is_bot(self, logged_user_agent: str) -> bool:
        return self.agent(logged_user_agent)[1][0]

    def columns(self, host: str, query: str, referrer: str, user_agent: str, ip: str) -> tuple:
        """The COLUMNS of one page view, from its values as logged."""
        return (
            self.agent(user_agent)[1] + self.geo.lookup(ip) + self.source(host, referrer, query)[1]
        )

    def clear(self) -> None:
        """Empty the caches (benchmarks start from a fresh process's state)."""
        self.agents.clear()
        self.sources.clear()
        if self._geo is not None:
            self._geo.clear()

    def close(self) -> None:
        if self._geo is not None:
            self._geo.close()
            self._geo = None
