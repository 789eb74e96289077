"""On start, after the migrations: the rollup catches up with older rows, and table TTLs follow the config.

* :func:`backfill_rollup`: the materialized views fill ``samples_1m`` from inserts
  made after migration 003 created it, and ``samples_1h`` from the inserts into
  ``samples_1m`` (migration 004). Rows stored before (a database upgraded from
  version 2) are copied in once, while a rollup is empty, as one ``INSERT ... SELECT``
  (a consistent snapshot: rows inserted meanwhile arrive through the view, not twice).
  Copying into ``samples_1m`` fills ``samples_1h`` through its view, so ``samples_1h`` is
  copied only when it is still empty after that. Its deduplication token names the
  snapshot, so two collectors starting together against one server copy once.
* :func:`apply_retention`: a migration writes each table's TTL with the
  retention configured when it ran; when ``--ttl-days`` or
  ``--rollup-ttl-days`` change later, ``ALTER TABLE ... MODIFY TTL`` brings the
  existing tables in line. Tables with another engine (a cluster's
  Distributed tables) are left alone; on a cluster change TTLs with
  ``ALTER TABLE ..._local ON CLUSTER``.

Names and day counts in these statements come from the code and
:class:`~flamehouse.collector.store.StoreConfig` (validated integers), never
from requests.
"""

from __future__ import annotations

import logging
import re

from flamehouse.collector.rollup import HOURS, LABEL_COLUMNS, MINUTES
from flamehouse.collector.store import Store

log = logging.getLogger(__name__)

#: Table → (its TTL column, the StoreConfig field holding its retention in days).
RETENTION: dict[str, tuple[str, str]] = {
    "samples": ("ts", "ttl_days"),
    "processes": ("last_seen", "ttl_days"),
    "gpu_devices": ("ts", "ttl_days"),
    "gpu_processes": ("ts", "ttl_days"),
    MINUTES: ("ts", "rollup_ttl_days"),
    HOURS: ("ts", "rollup_ttl_days"),
}
#: Rollup table → the function rounding ``ts`` down to its bucket.
BUCKETS = {MINUTES: "toStartOfMinute", HOURS: "toStartOfHour"}

_TTL_DAYS = re.compile(r"\bTTL\s+(\w+)\s*\+\s*toIntervalDay\((\d+)\)")


def backfill_rollup(store: Store) -> int:
    """Copies the raw rows into each empty rollup; returns the raw rows read (0 when nothing to do)."""
    db = store.db
    copied = 0
    for table, bucket in BUCKETS.items():
        if store.query(f"SELECT count() FROM {db}.{table}")[0][0]:
            continue
        rows, newest = store.query(f"SELECT count(), max(toUInt32(ts)) FROM {db}.samples")[0]
        if not rows:
            return 0
        if table == MINUTES and store.query(f"SELECT count() FROM {db}.{HOURS}")[0][0]:
            # The copy would reach samples_1h through its view and count its hours twice.
            log.warning("rollup not backfilled table=%s reason=%s holds rows while it is empty", table, HOURS)
            continue
        store.command(
            f"INSERT INTO {db}.{table} (ts, {LABEL_COLUMNS}, stack_id, count) "
            f"SELECT {bucket}(ts) AS bucket, {LABEL_COLUMNS}, stack_id, sum(count) FROM {db}.samples "
            f"GROUP BY bucket, {LABEL_COLUMNS}, stack_id "
            f"SETTINGS insert_deduplication_token = 'rollup-backfill-{int(rows)}-{int(newest)}'"
        )
        log.info("rollup backfilled table=%s raw_rows=%d", table, rows)
        copied = int(rows)
    return copied


def apply_retention(store: Store) -> dict[str, int]:
    """Sets each table's TTL to its configured days where it differs; returns ``{table: days}`` changed."""
    rows = store.query("SELECT name, engine_full FROM system.tables WHERE database = {db:String}", {"db": store.db})
    changed: dict[str, int] = {}
    for name, engine in rows:
        if name not in RETENTION:
            continue
        column, field = RETENTION[name]
        days = int(getattr(store.config, field))
        found = _TTL_DAYS.search(str(engine))
        if found is None or found.group(1) != column or int(found.group(2)) == days:
            continue
        store.command(f"ALTER TABLE {store.db}.{name} MODIFY TTL {column} + toIntervalDay({days})")
        log.info("retention changed table=%s from_days=%s to_days=%d", name, found.group(2), days)
        changed[name] = days
    return changed
