"""Compile strategy (#18): faster paths compiled off the load path, ``tablescore warmup``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from numba import njit

from scorer import ops
from scorer.model import Model

ROOT = Path(__file__).resolve().parents[2]


def test_background_compile_waits_for_loads_then_calls_back():
    @njit(nogil=True)
    def twice(a):
        return a[0] * 2.0

    args = (np.ones(3),)
    done: list[bool] = []
    assert not ops.compiled(twice, args)
    with ops.foreground():  # a model is loading: the background thread holds back
        ops.compile_later(twice, args, lambda: done.append(True))
        assert not ops.wait_background(timeout=0.2)
        assert done == [] and not ops.compiled(twice, args)
    assert ops.wait_background(timeout=120)
    assert done == [True] and ops.compiled(twice, args)
    assert twice(*args) == 2.0


def test_eager_mode_compiles_in_the_caller(monkeypatch):
    @njit(nogil=True)
    def thrice(a):
        return a[0] * 3.0

    monkeypatch.setattr(ops, "COMPILE_MODE", "eager")
    done: list[bool] = []
    ops.compile_later(thrice, (np.ones(2),), lambda: done.append(True))
    assert done == [True] and ops.compiled(thrice, (np.ones(2),))


def test_one_row_path_uses_batch_kernels_until_its_own_are_compiled(tmp_path, iris_logreg,
                                                                    monkeypatch):
    import exporters

    est, X = iris_logreg
    bundle = exporters.build_bundle(est, sample=X, name="iris")
    deferred = []  # (kernel, then) of every compile the model asked for

    def defer(kernel, args, then):
        deferred.append((kernel, then))

    monkeypatch.setattr("scorer.model.compile_later", defer)
    model = Model(bundle)
    fast = model._single_fast
    assert any(b.single is not None for b in model._plan)  # the link step has a row kernel
    assert model._single_steps is not fast
    assert [fn for fn, _ in model._single_steps] == [b.kernel for b in model._plan]
    row = np.ascontiguousarray(X[:1])
    before = model.predict_proba(row)
    np.testing.assert_allclose(before, est.predict_proba(row), rtol=1e-12, atol=1e-12)
    assert {k for k, _ in deferred} >= {fn for fn, _ in fast}
    for _, then in deferred:
        then()
    assert model._single_steps is fast and model._single_plan is None
    after = model.predict_proba(row)
    np.testing.assert_array_equal(after, before)
    assert model._single_plan is not None  # entry points resolved on the fast path


def test_float32_trees_verify_on_the_shared_variant_then_switch_to_their_own(monkeypatch):
    """A tree ensemble compared in float32 verifies (and scores batches) on the float64
    variant every tree ensemble shares; once its own variant is compiled, batches take that,
    with the same results bit for bit, and the float64 stand-in arrays are dropped."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    import exporters

    X, y = load_iris(return_X_y=True)
    est = RandomForestClassifier(n_estimators=7, max_depth=4, random_state=0).fit(X, y)
    bundle = exporters.build_bundle(est, sample=X, name="forest")
    deferred = []  # (kernel, args, then) of every compile the model asked for
    monkeypatch.setattr("scorer.model.compile_later",
                        lambda kernel, args, then: deferred.append((kernel, args, then)))
    model = Model(bundle)  # verified on the shared variant
    (i, b), = [(i, b) for i, b in enumerate(model._plan) if b.specialised is not None]
    assert b.args[2].dtype == np.float64 and b.specialised[2].dtype == np.float32
    assert model._args[i] is b.args
    assert any(k is b.kernel and all(x is y for x, y in zip(a[1:], b.specialised, strict=True))
               for k, a, _ in deferred)
    before = model.predict_proba(X)
    np.testing.assert_allclose(before, est.predict_proba(X), rtol=0, atol=1e-12)
    for _, _, then in deferred:
        then()
    assert model._args[i] is b.specialised and b.args is b.specialised
    np.testing.assert_array_equal(model.predict_proba(X), before)
    assert model.verify() == len(bundle.verification.expected[next(iter(
        bundle.verification.expected))])


def test_warmup_fills_the_cache_dir_and_a_later_load_compiles_nothing(tmp_path, iris_logreg):
    """Nothing left to compile for a server nor for Arrow batches (a Spark worker)."""
    import exporters

    est, X = iris_logreg
    exporters.export(est, tmp_path / "repo" / "iris" / "1", sample=X, name="iris")
    cache = tmp_path / "numba-cache"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("NUMBA_CACHE_DIR", None)
    res = subprocess.run([sys.executable, "-m", "tablescore", "warmup", "--cache-dir",
                          str(cache), "--repository", str(tmp_path / "repo")], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "warmed 1 model" in res.stdout
    files = sorted(p.name for p in cache.rglob("*") if p.suffix in (".nbi", ".nbc"))
    assert any("linear_kernel" in f for f in files)
    assert any("link_row_kernel" in f for f in files)
    before = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    probe = (
        "import json, sys\n"
        "from numba.core import event\n"
        "n = []\n"
        "class L(event.Listener):\n"
        "    def on_start(self, ev): n.append(ev.data['dispatcher'].py_func.__name__)\n"
        "    def on_end(self, ev): pass\n"
        "event.register('numba:compile', L())\n"
        "import scorer\n"
        "from scorer.server import wire\n"
        "from scorer.server.repository import warm\n"
        "wire.warm()\n"  # (the server compiles its request scan at every start)
        "m = scorer.load(sys.argv[1], keep_tables=False)\n"
        "warm(m)\n"
        "from scorer.batch import warm_arrow\n"
        "warm_arrow(m)\n"  # (Arrow batches: tablescore score, a Spark worker's first task)
        "print(json.dumps({'compiled': n, 'fast': m._single_steps is m._single_fast}))\n")
    res = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "repo" / "iris" / "1")],
                         cwd=ROOT, env={**env, "NUMBA_CACHE_DIR": str(cache)},
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got == {"compiled": [], "fast": True}  # every kernel came from the cache
    after = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    assert after == before  # and nothing new was written


def test_warmup_without_models_is_a_usage_error(capsys):
    from tablescore.cli import main

    assert main(["warmup"]) == 2
    assert "no models" in capsys.readouterr().err
