-- Cheaper merges, version 5: the labels map of samples keyed by plain strings.
-- Map(LowCardinality(String), String) made every merge of samples about twice as slow as
-- Map(String, String) (200k rows merged in ~0.67 s against ~0.32 s; with no labels column
-- ~0.19 s), and merges were the largest share of a collector's CPU under sustained ingest
-- (BENCHMARKS.md, ingest). Label names repeat in every row and compress as well either way.
-- The rollups keep their type: sipHash64(labels) is in their sorting key, which ALTER cannot
-- change, and their views convert the map on insert. Existing parts are rewritten by a
-- background mutation; reads convert parts not yet rewritten.
ALTER TABLE {db}.samples MODIFY COLUMN labels Map(String, String)
