"""S3 object references from the events that name log objects: S3 notifications,
SQS messages wrapping them, Lambda on-failure envelopes and EventBridge S3 events."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import unquote_plus


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    etag: str | None = None
    size: int | None = None


def s3_objects(event: dict | str) -> list[ObjectRef]:
    """Every object an event names, keys decoded (S3 sends them URL-encoded).
    An S3 test event names none. Anything unrecognised raises ValueError."""
    if isinstance(event, str):
        try:
            event = json.loads(event)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise ValueError("an event must be a JSON object")
    if "requestPayload" in event:  # Lambda async on-failure destination
        return s3_objects(event["requestPayload"])
    if event.get("Event") == "s3:TestEvent":
        return []
    if event.get("source") == "aws.s3" and "detail" in event:  # EventBridge
        detail = event["detail"]
        obj = detail["object"]
        return [ObjectRef(detail["bucket"]["name"], obj["key"], obj.get("etag"), obj.get("size"))]
    records = event.get("Records")
    if not isinstance(records, list):
        raise ValueError("no S3 records in the event")
    refs = []
    for record in records:
        if record.get("eventSource") == "aws:sqs":
            refs.extend(s3_objects(record["body"]))
            continue
        s3 = record.get("s3")
        if not s3:
            raise ValueError(f"not an S3 record: {record.get('eventSource')!r}")
        obj = s3["object"]
        refs.append(
            ObjectRef(
                s3["bucket"]["name"],
                unquote_plus(obj["key"]),
                obj.get("eTag"),
                obj.get("size"),
            )
        )
    return refs
