"""Deprecated alias: the PMML *reader* lives in :mod:`scorer.pmml` (reading a model format into
the IR is the scorer's job). ``exporters.pmml.read_pmml`` keeps working for one release; write
``from scorer.pmml import read_pmml``. Writing PMML is :func:`exporters.to_pmml`.
"""

from scorer.pmml import (
    MODEL_FAMILIES,
    PMMLError,
    PMMLSecurityError,
    read_pmml,
    read_pmml_bytes,
    register_model,
)

__all__ = ["MODEL_FAMILIES", "PMMLError", "PMMLSecurityError", "read_pmml", "read_pmml_bytes",
           "register_model"]
