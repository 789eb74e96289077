-- Cheaper rollups, version 4: the hourly rollup is filled from the per-minute rollup's inserts
-- instead of from every insert into samples.
-- The per-minute view's output is already summed per minute (≈ 3.7× fewer rows than the raw
-- insert in bench/ingest.py's workload), so the hourly view groups that instead of the raw
-- rows. Together with optimize_on_insert = 0 on sample inserts (flamehouse.collector.writer)
-- this cut the cost of the two views on a 50k-row insert from ~0.28 s to ~0.05 s
-- (BENCHMARKS.md, ingest). The counts are the same: an hour is the sum of its minutes.
-- A backfill (flamehouse.collector.upkeep) into samples_1m fills samples_1h through this view.
DROP TABLE IF EXISTS {db}.samples_1h_mv
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.samples_1h_mv TO {db}.samples_1h AS
SELECT toStartOfHour(ts) AS ts, service, job, host, pid, rank, thread, kind, labels, stack_id,
       sum(count) AS count
FROM {db}.samples_1m
GROUP BY ts, service, job, host, pid, rank, thread, kind, labels, stack_id
