"""Conformance: prove that tablescore returns what the original model returns.

Use :func:`conformance.check` right after export (in a training script or CI) so drift between
the parameters and the service is caught before a model is published.
"""

from .check import Report, check, compare_columns, ulp_distance

__all__ = ["Report", "check", "compare_columns", "ulp_distance"]
