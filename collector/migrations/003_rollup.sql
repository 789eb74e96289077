-- Long ranges, version 3: samples summed per minute and per hour, kept longer than raw seconds.
-- {rollup_ttl_days} is the rollups' retention in days (--rollup-ttl-days).
-- See flamehouse.collector.rollup for how queries choose between samples, samples_1m and
-- samples_1h; rows stored before this migration are copied in on start (flamehouse.collector.upkeep).

-- One row per (minute, labels, thread, kind, stack). The sorting key holds every
-- column a selector can name (the labels map as its hash: sorting by a Map makes
-- inserts ~40 % slower), so SummingMergeTree only ever adds counts of identical
-- label sets; readers still sum() because merges are eventual.
-- The deduplication window makes a retried batch (deduplicated in samples by its
-- batch_id) count once here too.
CREATE TABLE IF NOT EXISTS {db}.samples_1m
(
    ts          DateTime CODEC(DoubleDelta, ZSTD(1)),
    service     LowCardinality(String),
    job         LowCardinality(String),
    host        LowCardinality(String),
    pid         UInt32 CODEC(ZSTD(1)),
    rank        LowCardinality(String),
    thread      LowCardinality(String),
    kind        Enum8('cpu' = 1, 'wall' = 2),
    labels      Map(LowCardinality(String), String),
    stack_id    UInt64 CODEC(ZSTD(1)),
    count       UInt64 CODEC(T64, ZSTD(1))
)
ENGINE = SummingMergeTree(count)
PARTITION BY toDate(ts)
PRIMARY KEY (service, job, kind, ts, host, pid)
ORDER BY (service, job, kind, ts, host, pid, stack_id, rank, thread, sipHash64(labels))
TTL ts + toIntervalDay({rollup_ttl_days})
SETTINGS non_replicated_deduplication_window = 100000
;
-- A view writes into its target by column name: the minute is named ts.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.samples_1m_mv TO {db}.samples_1m AS
SELECT toStartOfMinute(ts) AS ts, service, job, host, pid, rank, thread, kind, labels, stack_id,
       sum(count) AS count
FROM {db}.samples
GROUP BY ts, service, job, host, pid, rank, thread, kind, labels, stack_id
;
-- The same per hour: a month is 720 buckets, so long ranges read about as many rows as an hour of seconds.
CREATE TABLE IF NOT EXISTS {db}.samples_1h
(
    ts          DateTime CODEC(DoubleDelta, ZSTD(1)),
    service     LowCardinality(String),
    job         LowCardinality(String),
    host        LowCardinality(String),
    pid         UInt32 CODEC(ZSTD(1)),
    rank        LowCardinality(String),
    thread      LowCardinality(String),
    kind        Enum8('cpu' = 1, 'wall' = 2),
    labels      Map(LowCardinality(String), String),
    stack_id    UInt64 CODEC(ZSTD(1)),
    count       UInt64 CODEC(T64, ZSTD(1))
)
ENGINE = SummingMergeTree(count)
PARTITION BY toDate(ts)
PRIMARY KEY (service, job, kind, ts, host, pid)
ORDER BY (service, job, kind, ts, host, pid, stack_id, rank, thread, sipHash64(labels))
TTL ts + toIntervalDay({rollup_ttl_days})
SETTINGS non_replicated_deduplication_window = 100000
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.samples_1h_mv TO {db}.samples_1h AS
SELECT toStartOfHour(ts) AS ts, service, job, host, pid, rank, thread, kind, labels, stack_id,
       sum(count) AS count
FROM {db}.samples
GROUP BY ts, service, job, host, pid, rank, thread, kind, labels, stack_id
