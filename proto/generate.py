"""Regenerates the committed protobuf modules from ``proto/flamehouse/v1`` and ``proto/pprof``.

Run ``python -m flamehouse.proto.generate`` after editing a ``.proto`` file
(needs grpcio-tools, a development dependency). A test checks that the
committed modules equal what this produces.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
SOURCES = ("flamehouse/v1/ingest.proto", "pprof/profile.proto")


def generate(out_dir: Path) -> list[Path]:
    """Writes ``<name>_pb2.py`` and ``.pyi`` for every source into ``out_dir``."""
    from grpc_tools import protoc  # development dependency only

    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        for source in SOURCES:
            args = ["protoc", f"-I{PROTO_ROOT}", f"--python_out={tmp}", f"--pyi_out={tmp}", source]
            if protoc.main(args) != 0:
                raise RuntimeError(f"protoc failed on {source}")
            stem = Path(source).with_suffix("")
            for suffix in ("_pb2.py", "_pb2.pyi"):
                generated = Path(tmp) / f"{stem}{suffix}"
                target = out_dir / f"{stem.name}{suffix}"
                target.write_bytes(generated.read_bytes())
                written.append(target)
    return written


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else PROTO_ROOT):
        print(path)
