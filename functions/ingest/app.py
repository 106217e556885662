"""Ingest Lambda: S3 notifications (direct) or SQS messages wrapping them -> cflogs.ingest."""

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from cflogs import db, events, ingest, s3
from cflogs.config import Settings

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)
settings = Settings.from_env()
_pipeline: ingest.Pipeline | None = None


def pipeline() -> ingest.Pipeline:
    global _pipeline
    if _pipeline is None:
        _pipeline = ingest.Pipeline(settings)
    return _pipeline


def load(ref: events.ObjectRef) -> ingest.FileResult:
    source = s3.s3_source(ref.bucket, ref.key, ref.etag, ref.size)
    conn = db.shared_connection(settings)
    try:
        result = ingest.ingest(conn, source, pipeline())
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


def sqs_record(record: SQSRecord) -> None:
    for ref in events.s3_objects(record.body):
        load(ref)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    records = event.get("Records") or []
    if records and records[0].get("eventSource") == "aws:sqs":
        return process_partial_response(
            event=event, record_handler=sqs_record, processor=processor, context=context
        )
    results, errors = [], []
    for ref in events.s3_objects(event):  # each record is its own unit
        try:
            results.append(load(ref).as_dict())
        except Exception as exc:
            logger.exception("ingest failed", extra={"bucket": ref.bucket, "key": ref.key})
            errors.append(exc)
    if errors:  # the async retry, then the on-failure destination, takes it from here
        raise errors[0]
    return {"objects": results}
