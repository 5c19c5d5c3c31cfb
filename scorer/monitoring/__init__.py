"""Drift monitoring: reference profiles stored in bundles, counted serving windows, PSI and
Jensen-Shannon distance per feature and output, and the batch drift report.

See docs/monitoring.md (what is measured, formulas, metrics) and docs/bundle-format.md §7
(the ``drift_reference`` object).
"""

from __future__ import annotations

from .drift import DEFAULT_THRESHOLDS, FeatureDrift, Thresholds, compare, compare_flat
from .kernels import PSI_EPSILON
from .profile import (
    DEFAULT_BINS,
    PROFILE_VERSION,
    FeatureProfile,
    Profile,
    build_profile,
    count_columns,
)
from .recorder import DEFAULT_WINDOW_S, Binner, DriftRecorder, WindowCounts

__all__ = [
    "DEFAULT_BINS", "DEFAULT_THRESHOLDS", "DEFAULT_WINDOW_S", "PROFILE_VERSION", "PSI_EPSILON",
    "Binner", "DriftRecorder", "FeatureDrift", "FeatureProfile", "Profile", "Thresholds",
    "WindowCounts", "build_profile", "compare", "compare_flat", "count_columns",
]
