-- GPU metrics, version 2: per-second device samples and per-process GPU use.
-- Same conventions as samples: day partitions, TTL, LowCardinality labels,
-- insert deduplication by batch_id.

CREATE TABLE IF NOT EXISTS {db}.gpu_devices
(
    ts            DateTime CODEC(DoubleDelta, ZSTD(1)),
    host          LowCardinality(String),
    gpu_index     UInt16,
    gpu_uuid      LowCardinality(String),
    gpu_name      LowCardinality(String),
    sm_util       Nullable(Float32),
    mem_util      Nullable(Float32),
    mem_used      UInt64 CODEC(T64, ZSTD(1)),
    mem_total     UInt64 CODEC(T64, ZSTD(1)),
    power_w       Nullable(Float32),
    temperature_c Nullable(Float32),
    sm_clock_mhz  Nullable(Float32),
    batch_id      String CODEC(ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (host, ts, gpu_index)
TTL ts + toIntervalDay({ttl_days})
SETTINGS non_replicated_deduplication_window = 100000
;
CREATE TABLE IF NOT EXISTS {db}.gpu_processes
(
    ts        DateTime CODEC(DoubleDelta, ZSTD(1)),
    host      LowCardinality(String),
    pid       UInt32,
    gpu_index UInt16,
    gpu_uuid  LowCardinality(String),
    sm_util   Nullable(Float32),
    mem_used  UInt64 CODEC(T64, ZSTD(1)),
    batch_id  String CODEC(ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (host, pid, ts, gpu_index)
TTL ts + toIntervalDay({ttl_days})
SETTINGS non_replicated_deduplication_window = 100000
