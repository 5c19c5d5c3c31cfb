"""Building IR steps: what every importer shares.

The sklearn / XGBoost / LightGBM exporters (``exporters``) and the PMML reader
(:mod:`scorer.pmml`) both emit bundle steps through a :class:`Graph` and the per-family helpers
here (``linear``, ``naive_bayes``, ``neural_network``, ``outputs``), so a step is built the same
way whichever direction the model comes from.
"""

from .graph import Graph

__all__ = ["Graph"]
