"""Settings from the environment, read once per process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def in_lambda() -> bool:
    return "AWS_LAMBDA_FUNCTION_NAME" in os.environ


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    db_secret_arn: str | None = None
    db_host: str | None = None
    db_port: int = 5432
    db_name: str = "postgres"
    db_user: str | None = None
    db_iam_auth: bool = False
    visitor_id_secret: str | None = None
    visitor_id_secret_arn: str | None = None
    visitor_id_mode: str = "stable"
    geoip_db_path: str | None = None
    geoip_db_s3_uri: str | None = None
    own_domains: tuple[str, ...] = ()
    referers_yml: str | None = None
    session_timeout_minutes: int = 30
    data_dir: Path = field(default_factory=lambda: Path(".cflogs"))

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def opt(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        default_data_dir = "/tmp/cflogs" if in_lambda() else ".cflogs"
        return cls(
            database_url=opt("DATABASE_URL"),
            db_secret_arn=opt("DB_SECRET_ARN"),
            db_host=opt("DB_HOST"),
            db_port=int(opt("DB_PORT") or 5432),
            db_name=opt("DB_NAME") or "postgres",
            db_user=opt("DB_USER"),
            db_iam_auth=(opt("DB_IAM_AUTH") or "false").lower() in ("1", "true", "yes"),
            visitor_id_secret=opt("VISITOR_ID_SECRET"),
            visitor_id_secret_arn=opt("VISITOR_ID_SECRET_ARN"),
            visitor_id_mode=(opt("VISITOR_ID_MODE") or "stable").lower(),
            geoip_db_path=opt("GEOIP_DB_PATH"),
            geoip_db_s3_uri=opt("GEOIP_DB_S3_URI"),
            own_domains=tuple(
                d.strip().lower() for d in (opt("OWN_DOMAINS") or "").split(",") if d.strip()
            ),
            referers_yml=opt("REFERERS_YML"),
            session_timeout_minutes=int(opt("SESSION_TIMEOUT_MINUTES") or 30),
            data_dir=Path(opt("CFLOGS_DATA_DIR") or default_data_dir),
        )
