"""Enrichment of page views: who (user agent, bot), where (GeoIP), how they came
(referrer, campaign). Every lookup is cached by its raw input; see useragent.py,
geo.py, referrer.py and campaign.py for the rules."""

from __future__ import annotations

from . import campaign, geo, referrer, useragent
from .config import Settings

# The page_views columns an Enricher fills, in this order.
COLUMNS = useragent.COLUMNS + geo.COLUMNS + referrer.COLUMNS + campaign.COLUMNS


class Enricher:
    """Built once per process from Settings. The GeoIP database is opened (or
    downloaded) on the first page view, so that a cold start that ingests nothing
    does not pay for it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.referrers = referrer.Referrers.from_settings(settings)
        self._geo: geo.GeoIP | None = None

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
        utm, hint, platform = campaign.parse(query)
        source = self.referrers.columns(referrer, host)
        if hint is not None:
            source = campaign.apply(source, hint, platform)
        return useragent.columns(user_agent) + self.geo.lookup(ip) + source + utm

    def close(self) -> None:
        if self._geo is not None:
            self._geo.close()
            self._geo = None
