"""Assignment: the published hash and its vectors, the split, stability across processes and
re-weighting, and the permanent control group's independence from every experiment."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from scorer.experiments.assign import (
    arm_index,
    bounds,
    bucket,
    in_control_group,
    salt_state,
    text_bucket,
    unit_text,
)
from scorer.experiments.config import parse_experiment
from scorer.experiments.router import ExperimentRouter
from scorer.pipeline import Request

#: docs/experiments.md publishes these: (salt, unit, bucket, arm of 50/50, arm of 20/30/50)
VECTORS = [
    ("churn-2026-12", "1001", 8473, 1, 2),
    ("churn-2026-12", "1002", 202, 0, 0),
    ("churn-2026-12", "customer-42", 1903, 0, 0),
    ("s", "", 1641, 0, 0),
    ("tablescore-permanent-control-group", "1001", 3460, 0, 1),
    ("salt-é", "ünït", 1119, 0, 0),
    ("churn-2026-12", 7, 7623, 1, 2),
]

N = 1_000_000


@pytest.fixture(scope="module")
def units() -> list[str]:
    return [str(i) for i in range(N)]


_CACHE: dict[tuple[str, int], np.ndarray] = {}


def _buckets(salt: str, units: list[str]) -> np.ndarray:
    key = (salt, len(units))
    if key not in _CACHE:
        _CACHE[key] = _compute(salt, units)
    return _CACHE[key]


def _compute(salt: str, units: list[str]) -> np.ndarray:
    prefix = salt.encode() + b"\x00"
    return np.fromiter((int.from_bytes(hashlib.sha256(prefix + u.encode()).digest()[:8], "big")
                        % 10_000 for u in units), dtype=np.int64, count=len(units))


@pytest.mark.parametrize(("salt", "unit", "b", "arm2", "arm3"), VECTORS)
def test_published_vectors(salt, unit, b, arm2, arm3, tmp_path: Path) -> None:
    # the documented algorithm, written out independently of the module
    text = str(unit)
    digest = hashlib.sha256(salt.encode("utf-8") + b"\x00" + text.encode("utf-8")).digest()
    assert int.from_bytes(digest[:8], "big") % 10_000 == b == bucket(salt, unit)
    # the request path's form: the salt's hash state, copied (CPython's own SHA-256 there)
    assert text_bucket(salt_state(salt), unit_text(unit)) == b
    assert arm_index(b, bounds([0.5, 0.5])) == arm2
    assert arm_index(b, bounds([0.2, 0.3, 0.5])) == arm3
    # and the route stage itself (its hashing is inlined)
    for weights, want in (([0.5, 0.5], arm2), ([0.2, 0.3, 0.5], arm3)):
        router = _router(tmp_path / str(len(weights)), salt, weights)
        request = Request(None, 1, [], parameters={"customer_id": unit})
        assert router.route(_Version("default"), request).version == str(want)
        assert request.response == {"arm": ["control", "a1", "a2"][want], "experiment": "e"}
        router.close()


class _Version:
    def __init__(self, version: str) -> None:
        self.name, self.version, self.fingerprint = "m", version, version
        self.model = SimpleNamespace(input_names=["x"])  # every version takes the same input


class _Repository:
    def __init__(self, root: Path) -> None:
        self.root = root

    def resolve(self, name: str, version: str = "") -> _Version:
        return _Version(version)


def _router(root: Path, salt: str, weights: list[float]) -> ExperimentRouter:
    """A router reading ``root/m/config.json`` with arms control, a1, a2 on versions 0, 1, 2."""
    arms = [{"name": n, "version": str(i), "weight": w}
            for i, (n, w) in enumerate(zip(["control", "a1", "a2"], weights, strict=False))]
    (root / "m").mkdir(parents=True, exist_ok=True)
    (root / "m" / "config.json").write_text(json.dumps({"experiment": {
        "name": "e", "unit": "customer_id", "salt": salt, "shadow": None, "arms": arms}}))
    return ExperimentRouter(_Repository(root), refresh_s=3600)


def test_unit_text() -> None:
    assert [unit_text(u) for u in (7, np.int64(7), 7.0, "7", b"7")] == ["7"] * 5
    for bad in (7.5, True, None):
        with pytest.raises(ValueError):
            unit_text(bad)


def test_the_split_matches_the_weights(units) -> None:
    b = _buckets("split-test", units)
    assert b[:1000].tolist() == [bucket("split-test", u) for u in units[:1000]]
    weights = [0.1, 0.3, 0.6]
    counts = np.bincount(arm_index(b, bounds(weights)), minlength=3)
    p = stats.chisquare(counts, np.asarray(weights) * N).pvalue
    assert p > 0.001, counts  # no sample-ratio mismatch


def test_two_processes_assign_identically(units) -> None:
    code = ("import sys; from scorer.experiments.assign import bucket; "
            "print(' '.join(str(bucket('replica-test', str(i))) for i in range(20000)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert [int(x) for x in out] == [bucket("replica-test", u) for u in units[:20000]]


@pytest.mark.parametrize(("before", "after"), [
    ([0.5, 0.5], [0.4, 0.6]), ([0.5, 0.5], [0.9, 0.1]), ([0.2, 0.8], [0.05, 0.95]),
    ([0.34, 0.33, 0.33], [0.2, 0.33, 0.47]), ([0.5, 0.3, 0.2], [0.5, 0.1, 0.4]),
])
def test_reweighting_moves_no_unit_into_a_shrinking_arm(units, before, after) -> None:
    b = _buckets("reweight", units)
    old = arm_index(b, bounds(before))
    new = arm_index(b, bounds(after))
    for arm, (wb, wa) in enumerate(zip(before, after, strict=True)):
        if wa < wb:  # shrinking: it loses units and gains none
            assert not np.any((new == arm) & (old != arm))
            assert np.any((old == arm) & (new != arm))
    moved = np.mean(old != new)
    need = 0.5 * np.abs(np.subtract(after, before)).sum()  # total variation of the splits
    if len(before) == 2:  # two arms: exactly the units the new weights require move
        assert moved == pytest.approx(need, abs=0.003)
    else:  # consecutive ranges: a middle arm that keeps its weight may shift (documented)
        assert moved >= need - 0.003


def test_the_control_group_ignores_every_experiment(units) -> None:
    salt, fraction = "tablescore-permanent-control-group", 0.05
    cg = _buckets(salt, units) < round(fraction * 10_000)
    assert abs(cg.mean() - fraction) < 0.001
    assert all(in_control_group(salt, u, fraction) == cg[int(u)] for u in units[:2000])
    # experiments added, re-weighted and ended use their own salts: the group is computed
    # from the unit and the group's salt alone, so no change of theirs can move a unit
    for cfg in ({"name": "a", "unit": "u", "salt": "x", "arms": [
                    {"name": "control", "version": "1", "weight": 0.5},
                    {"name": "b", "version": "2", "weight": 0.5}]},
                {"name": "a", "unit": "u", "salt": "x", "arms": [
                    {"name": "control", "version": "1", "weight": 0.9},
                    {"name": "b", "version": "2", "weight": 0.1}]}):
        parse_experiment(cfg)
        again = _compute(salt, units[:200_000]) < round(fraction * 10_000)
        assert int(np.sum(again != cg[:200_000])) == 0


def test_config_is_checked() -> None:
    ok = {"name": "e", "unit": "customer_id", "salt": "s", "shadow": None, "arms": [
        {"name": "control", "version": "1", "weight": 0.5},
        {"name": "candidate", "version": "production", "weight": 0.5}]}
    e = parse_experiment(ok)
    assert [a.version for a in e.arms] == ["1", "production"] and e.upper == (5000, 10000)
    assert parse_experiment(dict(ok)) == e  # compared by value: a rewritten file is no change
    for bad, msg in [
        ({**ok, "extra": 1}, "unknown"),
        ({**ok, "arms": [{"name": "control", "version": "1", "weight": 0.7}]}, "sum to 1"),
        ({**ok, "arms": [{"name": "a", "version": "1", "weight": 1.0}]}, "named 'control'"),
        ({**ok, "arms": [{"name": "control", "version": "1"}]}, "exactly the keys"),
        ({**ok, "unit": ""}, "unit"),
    ]:
        with pytest.raises(ValueError, match=msg):
            parse_experiment(bad)


def test_every_exposure_sink_stores_the_same_microsecond():
    """The Parquet log and the PostgreSQL table store a time rounded to the microsecond the
    same way (the Parquet one truncated: reports from the two differed by 1 µs)."""
    import datetime as dt

    from scorer.experiments.exposures import time_us
    from scorer.experiments.postgres import _EPOCH

    for t in (1_780_000_000.3525449, 1_780_000_000.9999996, 1_780_000_000.0000004, 0.5e-6):
        us = time_us(t)
        assert abs(us - t * 1e6) <= 0.5
        assert _EPOCH + dt.timedelta(microseconds=us) == dt.datetime.fromtimestamp(
            us / 1e6, dt.UTC) or abs(t) < 1
