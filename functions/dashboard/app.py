"""Dashboard Lambda: the analytics dashboard behind a function URL (IAM auth by
default) -> cflogs.dashboard.app. Read-only."""

from aws_lambda_powertools import Logger

from cflogs import db
from cflogs.config import Settings
from cflogs.dashboard.app import Dashboard, lambda_event

logger = Logger()
settings = Settings.from_env()
dashboard = Dashboard(lambda: db.shared_connection(settings))


@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    return lambda_event(dashboard, event)
