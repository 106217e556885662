"""Enrichment of page views: who (user agent, bot), where (GeoIP), how they came
(referrer, campaign). Every lookup is cached by its raw input; see useragent.py,
geo.py, referrer.py and campaign.py for the rules."""

from __future__ import annotations

from . import campaign, geo, referrer, useragent
from .config import Settings

# The page_views columns an Enricher fills, in this order.
COLUMNS = useragent.COLUMNS + geo.COLUMNS + referrer.COLUMNS + campaign.COLUMNS
# Longer inputs (user agents can reach 20 KB) are looked up without entering the
# caches, so that a file of huge distinct values cannot grow memory.
LONGEST_CACHED = 1024


class Enricher:
    """Built once per process from Settings. The GeoIP database is opened (or
    downloaded) on the first page view, so that a cold start that ingests nothing
    does not pay for it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.referrers = referrer.Referrers.from_settings(settings)
        self._geo: geo.GeoIP | None = None
        self._cached = (useragent.columns, self.referrers.columns, campaign.parse)
        self._uncached = tuple(function.__wrapped__ for function in self._cached)

    @property
    def geo(self) -> geo.GeoIP:
        if self._geo is None:
            self._geo = geo.GeoIP.from_settings(self.settings)
        return self._geo

    def is_bot(self, user_agent: str) -> bool:
        return useragent.columns(user_agent)[0]

    def columns(self, host: str, query: str, referrer: str, user_agent: str, ip: str) -> tuple:
        """The COLUMNS of one page view. Inputs as ingest has them: user agent and
        referrer decoded, query with CloudFront's extra encoding removed (the
        client's own intact), ip raw; '' for none."""
        long = (
            len(user_agent) > LONGEST_CACHED
            or len(referrer) > LONGEST_CACHED
            or len(query) > LONGEST_CACHED
        )
        agent_columns, referrer_columns, parse_campaign = self._uncached if long else self._cached
        utm, hint, platform = parse_campaign(query)
        source = referrer_columns(referrer, host)
        if hint is not None:
            source = campaign.apply(source, hint, platform)
        return agent_columns(user_agent) + self.geo.lookup(ip) + source + utm

    def close(self) -> None:
        if self._geo is not None:
            self._geo.close()
            self._geo = None
