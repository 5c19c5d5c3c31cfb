"""tablescore's scorer: load parameter bundles and apply them with Numba kernels.

Scoring needs only numpy, numba, pyarrow (and pandas for DataFrame in/out); never the
library that trained the model, never a JVM.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .model import Model, load

__all__ = ["Model", "__version__", "load"]
