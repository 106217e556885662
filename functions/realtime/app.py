"""Realtime Lambda: CloudFront real-time log records from a Kinesis data stream ->
cflogs.realtime, loaded as standard logs are. Each shard's records load in one
transaction, skipping those loaded before (replays change nothing); when a load
fails, its first record is reported as the batch item failure, so that Lambda
retries the shard from there (bisecting with BisectBatchOnFunctionError)."""

from collections import defaultdict

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent

from cflogs import db, ingest, realtime
from cflogs.config import Settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
settings = Settings.from_env()
fields = realtime.configured_fields()


@tracer.capture_method(capture_response=False)
def load(stream_arn: str, shard: str, records: list[realtime.Record]) -> None:
    conn = db.shared_connection(settings)
    result = realtime.load_shard_batch(
        conn, stream_arn, shard, records, fields, ingest.shared_pipeline(settings)
    )
    if result is None:
        logger.info("replayed records skipped", extra={"shard": shard, "records": len(records)})
        metrics.add_metric(name="ReplayedRecords", unit=MetricUnit.Count, value=len(records))
        return
    logger.info("ingested", extra=result.as_dict())
    metrics.add_metric(name="Lines", unit=MetricUnit.Count, value=result.lines)
    metrics.add_metric(name="PageViews", unit=MetricUnit.Count, value=result.page_views)
    metrics.add_metric(name="RejectedLines", unit=MetricUnit.Count, value=result.rejected)
    if result.status == "failed":  # the field list does not fit: retrying cannot help
        logger.error("real-time batch not loaded", extra=result.as_dict())
        metrics.add_metric(name="FailedObjects", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    shards: dict[tuple[str, str], list[realtime.Record]] = defaultdict(list)
    for record in KinesisStreamEvent(event).records:
        shard = record.event_id.split(":", 1)[0]
        payload = record.kinesis
        shards[record.event_source_arn, shard].append(
            realtime.Record(payload.sequence_number, payload.data_as_bytes())
        )
    failures = []
    for (stream_arn, shard), records in shards.items():
        try:
            load(stream_arn, shard, records)
        except Exception:
            logger.exception("real-time batch failed", extra={"shard": shard})
            first = min(records, key=lambda r: int(r.sequence_number))
            failures.append({"itemIdentifier": first.sequence_number})
    return {"batchItemFailures": failures}
