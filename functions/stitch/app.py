"""Stitch Lambda: on its EventBridge schedule, bring sessions and visitors up to
date with the page views ingest has loaded since the last run -> cflogs.sessions."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from cflogs import db, sessions
from cflogs.config import Settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
settings = Settings.from_env()

# Seconds of the invocation kept back for the last batch to commit and the
# metrics to flush; a backlog left over is the next scheduled run's.
RESERVE_S = 10


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    budget = max(context.get_remaining_time_in_millis() / 1000 - RESERVE_S, 0)
    conn = db.shared_connection(settings)
    result = sessions.stitch(conn, settings.session_timeout_minutes, time_budget_s=budget)
    logger.info("stitched", extra=result.as_dict())
    metrics.add_metric(name="VisitorsStitched", unit=MetricUnit.Count, value=result.visitors)
    metrics.add_metric(name="SessionsWritten", unit=MetricUnit.Count, value=result.sessions_written)
    metrics.add_metric(name="Backlog", unit=MetricUnit.Count, value=result.backlog)
    return result.as_dict()
