"""Ingest Lambda: S3 notifications (direct) or SQS messages wrapping them -> cflogs.ingest."""

import time

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import BotoCoreError

from cflogs import db, events, ingest, s3
from cflogs.config import Settings

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)
settings = Settings.from_env()
_pipeline: ingest.Pipeline | None = None
# Time kept back from the function's timeout to roll back and note why in the ledger.
RESERVE_SECONDS = 10


def pipeline() -> ingest.Pipeline:
    global _pipeline
    if _pipeline is None:
        _pipeline = ingest.Pipeline(settings)
    return _pipeline


def deadline(context) -> float:
    """When loading must stop (time.monotonic()) to leave RESERVE_SECONDS."""
    remaining = context.get_remaining_time_in_millis() / 1000
    return time.monotonic() + max(remaining - RESERVE_SECONDS, remaining / 2)


def load(ref: events.ObjectRef, stop_at: float) -> ingest.FileResult:
    source = s3.s3_source(ref.bucket, ref.key, ref.etag, ref.size)
    conn = db.shared_connection(settings)
    try:
        result = ingest.ingest(conn, source, pipeline(), stop_at)
    except Exception as exc:
        ingest.record_error(conn, source, exc)
        raise
    logger.info("ingested", extra=result.as_dict())
    metrics.add_metric(name="Lines", unit=MetricUnit.Count, value=result.lines)
    metrics.add_metric(name="PageViews", unit=MetricUnit.Count, value=result.page_views)
    metrics.add_metric(name="RejectedLines", unit=MetricUnit.Count, value=result.rejected)
    metrics.add_metric(name="ObjectSeconds", unit=MetricUnit.Seconds, value=result.seconds)
    if result.status == "failed":
        metrics.add_metric(name="FailedObjects", unit=MetricUnit.Count, value=1)
    return result


def sqs_record(record: SQSRecord, lambda_context) -> None:
    for ref in events.s3_objects(record.body):
        load(ref, deadline(lambda_context))


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    records = event.get("Records") or []
    if records and records[0].get("eventSource") == "aws:sqs":
        return process_partial_response(
            event=event, record_handler=sqs_record, processor=processor, context=context
        )
    results, errors = [], []
    stop_at = deadline(context)
    for ref in events.s3_objects(event):  # each record is its own unit
        try:
            results.append(load(ref, stop_at).as_dict())
        except BotoCoreError:  # credentials, region, network: no object's fault, none to try
            raise
        except Exception as exc:
            logger.exception("ingest failed", extra={"bucket": ref.bucket, "key": ref.key})
            errors.append(exc)
    if errors:  # the async retry, then the on-failure destination, takes it from here
        raise errors[0]
    return {"objects": results}
