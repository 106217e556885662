import json

import pytest

from cflogs.events import ObjectRef, s3_objects


def s3_record(key: str) -> dict:
    return {
        "eventSource": "aws:s3",
        "s3": {"bucket": {"name": "b"}, "object": {"key": key, "eTag": "e1", "size": 7}},
    }


def test_keys_are_url_decoded():
    event = {"Records": [s3_record("logs/a+b%3Dc.gz"), s3_record("logs/x%2By.gz")]}
    assert s3_objects(event) == [
        ObjectRef("b", "logs/a b=c.gz", "e1", 7),
        ObjectRef("b", "logs/x+y.gz", "e1", 7),
    ]


def test_wrapped_forms_name_the_same_objects():
    direct = {"Records": [s3_record("k.gz")]}
    envelope = {"requestPayload": direct, "responseContext": {"functionError": "Unhandled"}}
    sqs = {"Records": [{"eventSource": "aws:sqs", "body": json.dumps(envelope)}]}
    bridge = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": "b"}, "object": {"key": "k.gz", "etag": "e1", "size": 7}},
    }
    expected = [ObjectRef("b", "k.gz", "e1", 7)]
    assert s3_objects(direct) == s3_objects(envelope) == s3_objects(sqs) == expected
    assert s3_objects(json.dumps(direct)) == s3_objects(bridge) == expected


def test_s3_test_event_names_nothing():
    assert s3_objects({"Service": "Amazon S3", "Event": "s3:TestEvent"}) == []


@pytest.mark.parametrize(
    "event",
    ["not json", "[1, 2]", {"Records": [{"eventSource": "aws:dynamodb"}]}, {"detail": {}}],
)
def test_anything_else_is_a_clear_error(event):
    with pytest.raises(ValueError):
        s3_objects(event)
