"""gRPC definitions of tablescore's scoring service (Open Inference Protocol v2 + Triton's
repository, statistics and configuration extensions).

``inference.proto`` is the source; ``inference_pb2*.py`` are generated from it by
``python -m protos.generate`` and committed.

The generated messages live in :data:`POOL`, a descriptor pool of their own, not in protobuf's
default pool: tritonclient (and other KServe clients) register messages with the very same
full names (``inference.ModelInferRequest``...) in the default pool, and one process may hold
both (a service that scores through tablescore and calls Triton, the demo, the tests). The
wire format does not depend on the pool.
"""

from __future__ import annotations

from google.protobuf import descriptor_pool

#: Descriptor pool holding tablescore's generated protocol messages.
POOL = descriptor_pool.DescriptorPool()

__all__ = ["POOL"]
