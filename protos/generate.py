"""Regenerate the committed Python stubs from ``protos/inference.proto``.

Usage::

    python -m protos.generate            # rewrites protos/inference_pb2*.py(i)
    python -m protos.generate --out DIR  # writes DIR/protos/... instead (used by the tests)

Needs ``grpcio-tools`` (test extra). The only change made to protoc's output: the message
module registers its file in :data:`protos.POOL` instead of protobuf's default pool (see
``protos/__init__.py`` for why).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO = "protos/inference.proto"
#: generated files, relative to the repository root
OUTPUTS = ("protos/inference_pb2.py", "protos/inference_pb2.pyi", "protos/inference_pb2_grpc.py")

_DEFAULT_POOL = "_descriptor_pool.Default().AddSerializedFile("
_PRIVATE_POOL = "_POOL.AddSerializedFile("
_POOL_IMPORT = "from protos import POOL as _POOL\n"


def _use_private_pool(source: str) -> str:
    if source.count(_DEFAULT_POOL) != 1:
        raise RuntimeError("protoc output changed shape: expected one AddSerializedFile call")
    source = source.replace(_DEFAULT_POOL, _PRIVATE_POOL)
    marker = "# @@protoc_insertion_point(imports)\n"
    if marker not in source:
        raise RuntimeError("protoc output changed shape: no imports insertion point")
    return source.replace(marker, _POOL_IMPORT + marker, 1)


def generate(out: Path) -> list[Path]:
    """Run protoc (from grpcio-tools) on the proto and write the stubs under ``out``.

    Returns the paths written (``out / p`` for each of :data:`OUTPUTS`).
    """
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        args = ["grpc_tools.protoc", f"-I{ROOT}", f"--python_out={tmp}", f"--pyi_out={tmp}",
                f"--grpc_python_out={tmp}", str(ROOT / PROTO)]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {PROTO}")
        written = []
        for rel in OUTPUTS:
            text = (Path(tmp) / rel).read_text(encoding="utf-8")
            if rel.endswith("_pb2.py"):
                text = _use_private_pool(text)
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m protos.generate",
                                description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=ROOT,
                   help="directory to write protos/... under (default: the repository root)")
    args = p.parse_args(argv)
    for path in generate(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
