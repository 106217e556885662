"""Stitch Lambda: on its EventBridge schedule, drop months past RETENTION_MONTHS
(cflogs.retention; 0 keeps all), then bring sessions and visitors up to date with
the page views ingest has loaded since the last run -> cflogs.sessions."""

import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from cflogs import db, retention, sessions
from cflogs.config import Settings

logger = Logger()
metrics = Metrics()
settings = Settings.from_env()

# Seconds of the invocation kept back for the last batch to commit and the
# metrics to flush; a backlog left over is the next scheduled run's.
RESERVE_S = 10


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    budget = max(context.get_remaining_time_in_millis() / 1000 - RESERVE_S, 0)
    conn = db.shared_connection(settings)
    keep_months = int(os.environ.get("RETENTION_MONTHS") or 0)
    if keep_months:
        dropped = retention.apply(conn, keep_months)
        if dropped.partitions or dropped.busy:
            logger.info("retention", extra=dropped.as_dict())
    result = sessions.stitch(conn, settings.session_timeout_minutes, time_budget_s=budget)
    logger.info("stitched", extra=result.as_dict())
    metrics.add_metric(name="VisitorsStitched", unit=MetricUnit.Count, value=result.visitors)
    metrics.add_metric(name="SessionsWritten", unit=MetricUnit.Count, value=result.sessions_written)
    metrics.add_metric(name="Backlog", unit=MetricUnit.Count, value=result.backlog)
    metrics.add_metric(
        name="BacklogAgeSeconds", unit=MetricUnit.Seconds, value=result.backlog_age_s
    )
    return result.as_dict()
