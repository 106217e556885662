"""Backfill Lambda: an EventBridge schedule (recent hours), a manual range event, or
the continuation of an earlier run -> cflogs.backfill, which queues for ingest."""

import json
import os
import time
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from cflogs import aws, backfill, db
from cflogs.config import Settings

logger = Logger()
metrics = Metrics()
settings = Settings.from_env()
RESERVE_SECONDS = 30  # stop listing this long before the function times out


def _env_number(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


class Run(NamedTuple):
    request: backfill.Request
    cursor: backfill.Cursor | None = None
    hop: int = 0  # how many runs came before this one in the chain
    scheduled: bool = False


def run_for(event: dict) -> Run:
    """What an event asks for: a scheduled, manual or continued run."""
    if "requestPayload" in event:  # a failed async run redriven from its on-failure destination
        event = event["requestPayload"]
    if "continuation" in event:
        follow = event["continuation"]
        cursor = backfill.Cursor(**follow["cursor"])
        return Run(backfill.Request.from_dict(follow["request"]), cursor, int(follow.get("hop", 1)))
    defaults = {
        "prefixes": backfill.default_prefixes(),
        "max_attempts": int(_env_number("BACKFILL_MAX_ATTEMPTS", backfill.MAX_ATTEMPTS)),
        "stale_hours": _env_number("BACKFILL_STALE_HOURS", backfill.STALE_HOURS),
    }
    if event.get("detail-type") == "Scheduled Event":  # the safety net for lost S3 events
        lookback = timedelta(hours=_env_number("BACKFILL_LOOKBACK_HOURS", 48))
        request = backfill.Request(
            **defaults,
            since=datetime.now(UTC) - lookback,
            min_age_minutes=_env_number("BACKFILL_MIN_AGE_MINUTES", 15),
        )
        return Run(request, scheduled=True)
    fields = {name: value for name, value in event.items() if value is not None}
    return Run(backfill.Request.from_dict({**defaults, **fields}))


def continue_later(event: dict, context) -> None:
    """Run the rest in a new asynchronous invocation of this function (async
    invokes are retried, then kept by the on-failure destination)."""
    aws.client("lambda").invoke(
        FunctionName=context.invoked_function_arn,
        InvocationType="Event",
        Payload=json.dumps(event).encode(),
    )


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    run = run_for(event)
    queue_url = os.environ.get("INGEST_QUEUE_URL")
    if not queue_url:
        raise RuntimeError("INGEST_QUEUE_URL is not set")
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - RESERVE_SECONDS
    conn = db.shared_connection(settings)
    counts = Counter()
    if run.scheduled:  # failures of any date, not only the recent keys listed below
        counts.update(backfill.retry_from_ledger(conn, run.request, queue_url))
    result = backfill.backfill(
        conn,
        run.request,
        queue_url=queue_url,
        cursor=run.cursor,
        deadline=deadline,
        page_size=int(_env_number("BACKFILL_PAGE_SIZE", backfill.PAGE_SIZE)),
    )
    counts = dict(counts + result.counts)
    metrics.add_metric(name="ObjectsListed", unit=MetricUnit.Count, value=counts.get("listed", 0))
    metrics.add_metric(
        name="ObjectsEnqueued", unit=MetricUnit.Count, value=counts.get("enqueued", 0)
    )
    metrics.add_metric(
        name="ObjectsAbandoned", unit=MetricUnit.Count, value=counts.get("abandoned", 0)
    )
    follow_up = result.continuation(run.hop + 1)
    if follow_up:
        continue_later(follow_up, context)
    logger.info(
        "backfill run", extra={"counts": counts, "hop": run.hop, "complete": result.complete}
    )
    return {
        "counts": counts,
        "complete": result.complete,
        "hop": run.hop,
        "cursor": asdict(result.cursor) if result.cursor else None,
    }
