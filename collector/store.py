"""Connection to the ClickHouse store: embedded chDB or a ClickHouse server.

Both go through clickhouse-connect, so the same SQL runs on either. chDB allows
one process per data path, so everything inside one process shares one
:class:`Store`; calls are serialised with a lock because a clickhouse-connect
client is not safe for concurrent use.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flamehouse.collector import StoreError

log = logging.getLogger(__name__)

_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Where the data lives and how to reach it."""

    #: ``chdb:///abs/path`` (embedded) or ``http(s)://host:8123`` (server).
    dsn: str
    #: Database holding flamehouse's tables; created when missing.
    database: str = "flamehouse"
    #: Server credentials (ignored for chDB).
    user: str = "default"
    password: str = ""
    #: Retention of raw samples, processes and GPU rows, in days (table TTL).
    ttl_days: int = 14
    #: Retention of the per-minute rollup ``samples_1m``, in days (table TTL).
    rollup_ttl_days: int = 90

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb:")


def embedded_dsn(data_dir: str | Path) -> str:
    """The chDB DSN for a data directory (made absolute)."""
    return f"chdb://{Path(data_dir).resolve() / 'clickhouse'}"


class Store:
    """A thread-safe handle on the store; all SQL goes through :meth:`query` and :meth:`insert`."""

    def __init__(self, config: StoreConfig) -> None:
        if not _DB_NAME.match(config.database):
            raise StoreError(f"database name {config.database!r} must match {_DB_NAME.pattern}")
        for name, days in (("ttl_days", config.ttl_days), ("rollup_ttl_days", config.rollup_ttl_days)):
            if days < 1:
                raise StoreError(f"{name} must be at least 1, got {days}")
        self.config = config
        self.db = config.database
        self._lock = threading.Lock()
        self._client = self._connect(config)
        #: (table, columns) → their ClickHouse types, looked up once per table and column list.
        self._column_types: dict[tuple[str, tuple[str, ...]], list[Any]] = {}

    @staticmethod
    def _connect(config: StoreConfig) -> Any:
        import clickhouse_connect

        try:
            if config.embedded:
                path = config.dsn[len("chdb://") :]
                if not path.startswith("/"):
                    raise StoreError(f"chdb DSN needs an absolute path, got {config.dsn!r}")
                Path(path).mkdir(parents=True, exist_ok=True)
                return clickhouse_connect.get_client(dsn=config.dsn)
            parts = urlsplit(config.dsn)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise StoreError(f"store DSN must be chdb:///path or http(s)://host:port, got {config.dsn!r}")
            return clickhouse_connect.get_client(
                host=parts.hostname,
                port=parts.port or (8443 if parts.scheme == "https" else 8123),
                username=parts.username or config.user,
                password=parts.password or config.password,
                secure=parts.scheme == "https",
            )
        except StoreError:
            raise
        except Exception as exc:  # third-party errors translated at the boundary
            raise StoreError(f"cannot open store {_redact(config.dsn)}: {exc}") from exc

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Runs a statement that returns nothing (DDL)."""
        with self._lock:
            try:
                self._client.command(sql, parameters=dict(parameters or {}))
            except Exception as exc:
                raise StoreError(f"statement failed: {exc}") from exc

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Runs a SELECT with bound parameters (``{name:Type}`` placeholders) and returns its rows."""
        with self._lock:
            try:
                result = self._client.query(sql, parameters=dict(parameters or {}))
            except Exception as exc:
                raise StoreError(f"query failed: {exc}") from exc
            return list(result.result_rows)

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        data: Sequence[Sequence[Any]],
        *,
        dedup_token: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        """Inserts column-oriented ``data`` (one sequence per column) into ``db.table``.

        With ``dedup_token`` ClickHouse drops a repeated insert of the same token
        (the table must have a deduplication window), which makes retries idempotent.
        ``settings`` are ClickHouse query settings for this insert (names from the code only).
        """
        settings = dict(settings or {})
        if dedup_token is not None:
            settings["insert_deduplication_token"] = dedup_token
        key = (table, tuple(columns))
        with self._lock:
            try:
                types = self._column_types.get(key)
                if types is None:  # clickhouse-connect would DESCRIBE the table on every insert (~1-3 ms)
                    context = self._client.create_insert_context(f"{self.db}.{table}", column_names=list(columns))
                    types = self._column_types[key] = list(context.column_types)
                self._client.insert(
                    f"{self.db}.{table}",
                    list(data),
                    column_names=list(columns),
                    column_types=types,
                    column_oriented=True,
                    settings=settings,
                )
            except Exception as exc:
                self._column_types.pop(key, None)  # the table may have changed: look its types up again
                raise StoreError(f"insert into {table} failed: {exc}") from exc

    def ping(self) -> bool:
        try:
            self.query("SELECT 1")
        except StoreError:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            try:
                self._client.close()
            except Exception:  # closing a broken client must not hide the real error
                log.debug("store close failed", exc_info=True)


def _redact(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password:
        return dsn.replace(parts.password, "***")
    return dsn
