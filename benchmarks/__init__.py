"""tablescore benchmark harness.

One shared runner (:mod:`benchmarks.run`), one results schema, a model zoo
(:mod:`benchmarks.models`), one adapter class per scoring engine (:mod:`benchmarks.engines`)
and a Markdown + PNG report (:mod:`benchmarks.report`).

    python -m benchmarks.run [--quick] [--families logreg forest ...] [--out benchmarks/results]

:func:`benchmarks.run.smoke` runs one tiny configuration of every adapter in a few seconds, for
the test suite.
"""

from __future__ import annotations

SCHEMA = "tablescore-bench/1"

__all__ = ["SCHEMA"]
