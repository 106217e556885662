"""Settings from the environment, read once per process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def in_lambda() -> bool:
    return "AWS_LAMBDA_FUNCTION_NAME" in os.environ


def default_data_dir() -> Path:
    """Where local runs keep the embedded database, the visitor-id key and the
    demo: one folder per user, whatever the working directory, so that every
    command finds the same key and data (XDG_DATA_HOME/cflogs, else
    ~/.local/share/cflogs); /tmp/cflogs in Lambda."""
    if in_lambda():
        return Path("/tmp/cflogs")
    base = os.environ.get("XDG_DATA_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".local" / "share") / "cflogs"


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    db_secret_arn: str | None = None
    db_host: str | None = None
    db_port: int = 5432
    db_name: str = "postgres"
    db_user: str | None = None
    db_iam_auth: bool = False
    db_sslmode: str | None = None
    db_sslrootcert: str | None = None
    visitor_id_secret: str | None = None
    visitor_id_secret_arn: str | None = None
    visitor_id_mode: str = "stable"
    geoip_db_path: str | None = None
    geoip_db_s3_uri: str | None = None
    own_domains: tuple[str, ...] = ()
    referers_yml: str | None = None
    session_timeout_minutes: int = 30
    data_dir: Path = field(default_factory=default_data_dir)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def opt(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        return cls(
            database_url=opt("DATABASE_URL"),
            db_secret_arn=opt("DB_SECRET_ARN"),
            db_host=opt("DB_HOST"),
            db_port=int(opt("DB_PORT") or 5432),
            db_name=opt("DB_NAME") or "postgres",
            db_user=opt("DB_USER"),
            db_iam_auth=(opt("DB_IAM_AUTH") or "false").lower() in ("1", "true", "yes"),
            db_sslmode=opt("DB_SSLMODE"),
            db_sslrootcert=opt("DB_SSLROOTCERT"),
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
            data_dir=Path(opt("CFLOGS_DATA_DIR") or default_data_dir()),
        )
