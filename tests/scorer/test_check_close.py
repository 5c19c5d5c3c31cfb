"""The verification failure message says by how much a value is off (absolute, relative,
float32 / float64 ulps) and whether that is within the recorded value's own precision."""

from __future__ import annotations

import numpy as np
import pytest

from scorer.errors import VerificationError
from scorer.model import check_close


def _message(got: float, expected: float, abs_tol: float = 1e-13,
             rel_tol: float = 1e-13) -> str:
    with pytest.raises(VerificationError) as info:
        check_close(np.array([got]), np.array([expected]), abs_tol=abs_tol, rel_tol=rel_tol,
                    what="model 'm' verification", column="p")
    return str(info.value)


def test_float32_value_off_by_ulps() -> None:
    e = float(np.float32(0.0030536605))  # a float32 recorded value
    g = e + 16 * float(np.spacing(np.float32(e)))
    msg = _message(g, e)
    assert "differs by 3.73e-09" in msg
    assert "relative 1.22e-06" in msg
    assert "16 float32 ulps" in msg
    assert "beyond the value's own float32 precision" in msg
    assert "no longer reproduce the original model" in msg


def test_float32_value_within_its_own_precision() -> None:
    e = float(np.float32(0.1))
    g = e + 1e-10  # rounds to the same float32
    msg = _message(g, e)
    assert "within the value's own float32 precision" in msg
    assert "tighter than the output's precision" in msg


def test_float64_value() -> None:
    e = 0.1  # not a float32
    msg = _message(e + 1e-9, e)
    assert "float64 ulps" in msg and "beyond float64 rounding" in msg
    assert "relative 1e-08" in msg
