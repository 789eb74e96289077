"""Wire contract between agents and the collector.

Owns the ``.proto`` sources (``proto/flamehouse/v1/*.proto``), the Python code
generated from them (``ingest_pb2``; regenerate with ``python -m
flamehouse.proto.generate``) and :mod:`flamehouse.proto.ids`, the one definition
of how frame, function and stack identifiers are computed.
"""
