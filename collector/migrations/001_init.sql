-- flamehouse schema, version 1.
-- {db} is the database name, {ttl_days} the retention of raw data in days.
-- Statements are separated by lines holding only ";". Every statement is idempotent.

-- One row per (second, process, thread, stack, kind); `count` is how many py-spy
-- samples fell in that second. Labels are denormalised into the row so that a
-- selector is a plain WHERE on this table.
CREATE TABLE IF NOT EXISTS {db}.samples
(
    ts          DateTime CODEC(DoubleDelta, ZSTD(1)),
    service     LowCardinality(String),
    job         LowCardinality(String),
    host        LowCardinality(String),
    pid         UInt32 CODEC(ZSTD(1)),
    rank        LowCardinality(String),
    thread      LowCardinality(String),
    tid         UInt64 CODEC(ZSTD(1)),
    kind        Enum8('cpu' = 1, 'wall' = 2),
    labels      Map(LowCardinality(String), String),
    stack_id    UInt64 CODEC(ZSTD(1)),
    count       UInt32 CODEC(T64, ZSTD(1)),
    batch_id    String CODEC(ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (service, job, kind, ts, host, pid, stack_id)
TTL ts + toIntervalDay({ttl_days})
SETTINGS non_replicated_deduplication_window = 100000
;
-- Stacks, root first: frame ids (per line) and function ids (per function),
-- both as computed by flamehouse.proto.ids. Written once per batch that uses
-- them; readers take any() per stack_id.
CREATE TABLE IF NOT EXISTS {db}.stacks
(
    stack_id     UInt64,
    frame_ids    Array(UInt64),
    function_ids Array(UInt64),
    last_seen    Date
)
ENGINE = ReplacingMergeTree(last_seen)
ORDER BY stack_id
;
CREATE TABLE IF NOT EXISTS {db}.frames
(
    frame_id    UInt64,
    function_id UInt64,
    function    String,
    file        String,
    line        UInt32,
    last_seen   Date
)
ENGINE = ReplacingMergeTree(last_seen)
ORDER BY frame_id
;
-- One row per process and batch that mentioned it; readers take the latest.
CREATE TABLE IF NOT EXISTS {db}.processes
(
    host          LowCardinality(String),
    pid           UInt32,
    start_time    DateTime64(3),
    ppid          UInt32,
    cmdline       String,
    service       LowCardinality(String),
    job           LowCardinality(String),
    rank          LowCardinality(String),
    labels        Map(LowCardinality(String), String),
    agent_id      String,
    agent_version LowCardinality(String),
    last_seen     DateTime
)
ENGINE = ReplacingMergeTree(last_seen)
PARTITION BY toDate(last_seen)
ORDER BY (host, pid, start_time)
TTL last_seen + toIntervalDay({ttl_days})
