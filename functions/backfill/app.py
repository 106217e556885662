"""Backfill Lambda: an EventBridge schedule (recent hours), a manual range event, or
the continuation of an earlier run -> cflogs.backfill, which queues for ingest."""

import json
import os
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from cflogs import aws, backfill, db
from cflogs.config import Settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
settings = Settings.from_env()
RESERVE_SECONDS = 30  # stop listing this long before the function times out


def _env_number(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def request_for(event: dict) -> tuple[backfill.Request, backfill.Cursor | None, int]:
    """The request, the cursor to resume from, and the hop number of this run."""
    if "requestPayload" in event:  # a failed async run redriven from its on-failure destination
        event = event["requestPayload"]
    if "continuation" in event:
        follow = event["continuation"]
        cursor = backfill.Cursor(**follow["cursor"])
        return backfill.Request.from_dict(follow["request"]), cursor, int(follow.get("hop", 1))
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
        return request, None, 0
    fields = {name: value for name, value in event.items() if value is not None}
    return backfill.Request.from_dict({**defaults, **fields}), None, 0


def continue_later(event: dict, context) -> None:
    """Run the rest in a new asynchronous invocation of this function (async
    invokes are retried, then kept by the on-failure destination)."""
    aws.client("lambda").invoke(
        FunctionName=context.invoked_function_arn,
        InvocationType="Event",
        Payload=json.dumps(event).encode(),
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    request, cursor, hop = request_for(event)
    queue_url = os.environ.get("INGEST_QUEUE_URL")
    if not queue_url:
        raise RuntimeError("INGEST_QUEUE_URL is not set")
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - RESERVE_SECONDS
    result = backfill.backfill(
        db.shared_connection(settings),
        request,
        queue_url=queue_url,
        cursor=cursor,
        deadline=deadline,
        page_size=int(_env_number("BACKFILL_PAGE_SIZE", backfill.PAGE_SIZE)),
    )
    counts = dict(result.counts)
    metrics.add_metric(name="ObjectsListed", unit=MetricUnit.Count, value=counts.get("listed", 0))
    metrics.add_metric(
        name="ObjectsEnqueued", unit=MetricUnit.Count, value=counts.get("enqueued", 0)
    )
    metrics.add_metric(
        name="ObjectsAbandoned", unit=MetricUnit.Count, value=counts.get("abandoned", 0)
    )
    follow_up = result.continuation(hop + 1)
    if follow_up:
        continue_later(follow_up, context)
    logger.info("backfill run", extra={"counts": counts, "hop": hop, "complete": result.complete})
    return {
        "counts": counts,
        "complete": result.complete,
        "hop": hop,
        "cursor": asdict(result.cursor) if result.cursor else None,
    }
