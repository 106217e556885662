"""boto3 clients, created once per process; AWS_ENDPOINT_URL is honoured by boto3 itself."""

from __future__ import annotations

import functools
import json


@functools.cache
def client(service: str):
    import boto3  # here, not at the top: local runs that never touch AWS skip its 40 MB

    return boto3.client(service)


def reset_clients() -> None:
    """Forget cached clients, and the credentials boto3's default session keeps
    (tests and the demo switch endpoints and credentials)."""
    client.cache_clear()
    import boto3

    boto3.DEFAULT_SESSION = None


def get_secret(arn: str) -> str:
    return client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]


def get_secret_json(arn: str) -> dict:
    return json.loads(get_secret(arn))
