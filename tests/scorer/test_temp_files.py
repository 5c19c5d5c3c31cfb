"""Temporary outputs (#18): named with the writer's pid, removed on Ctrl-C / SIGTERM, and a
killed writer's removed by the next write to the same target (bundles, PMML documents)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import exporters
import scorer.bundle
from scorer.bundle import read_bundle, write_bundle
from scorer.files import TMP_INFIX


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture()
def iris_bundle(iris_logreg):
    est, X = iris_logreg
    return exporters.build_bundle(est, sample=X, name="iris")


def _hidden(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith("."))


def test_bundle_temp_dir_carries_the_pid_and_goes_on_ctrl_c(tmp_path, iris_bundle,
                                                            monkeypatch):
    seen: list[Path] = []
    real = scorer.bundle._write_table

    def interrupted(root, rel, table, entries):
        seen.append(Path(root))
        real(root, rel, table, entries)
        raise KeyboardInterrupt

    monkeypatch.setattr(scorer.bundle, "_write_table", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_bundle(iris_bundle, tmp_path / "b")
    assert seen[0].name.startswith(f".b{TMP_INFIX}{os.getpid()}-")
    assert list(tmp_path.iterdir()) == []  # no temp directory, no bundle


def test_stale_bundle_temp_dirs_of_dead_writers_are_removed(tmp_path, iris_bundle, dead_pid):
    stale = tmp_path / f".b{TMP_INFIX}{dead_pid}-abc123"
    live = tmp_path / f".b{TMP_INFIX}{os.getppid()}-def456"  # a running writer's: kept
    other = tmp_path / f".c{TMP_INFIX}{dead_pid}-abc123"  # another target's: kept
    for d in (stale, live, other):
        (d / "tables").mkdir(parents=True)
        (d / "tables" / "x.parquet").write_bytes(b"partial")
    write_bundle(iris_bundle, tmp_path / "b")
    assert _hidden(tmp_path) == sorted([live.name, other.name])
    assert read_bundle(tmp_path / "b").name == "iris"


def _fake_converter(monkeypatch, action):
    """to_pmml with sklearn2pmml's conversion replaced by ``action(pipeline, path)``."""
    pytest.importorskip("sklearn2pmml")
    # (the package's attribute ``to_pmml`` is the function: the module by its name)
    to_pmml_module = importlib.import_module("exporters.to_pmml")

    monkeypatch.setattr(to_pmml_module, "_check_java", lambda: None)
    monkeypatch.setattr("sklearn2pmml.sklearn2pmml", action)
    return to_pmml_module.to_pmml


@pytest.mark.parametrize("signal_like", [KeyboardInterrupt, SystemExit])
def test_pmml_temp_is_removed_on_base_exceptions(tmp_path, iris_logreg, monkeypatch,
                                                 signal_like):
    est, X = iris_logreg
    seen: list[Path] = []

    def killed(pipeline, path):
        seen.append(Path(path))
        Path(path).write_text("<PMML partial")
        raise signal_like()

    to_pmml = _fake_converter(monkeypatch, killed)
    with pytest.raises(signal_like):
        to_pmml(est, tmp_path / "m.pmml", sample=X)
    assert seen[0].name.startswith(f".m.pmml{TMP_INFIX}{os.getpid()}-")
    assert list(tmp_path.iterdir()) == []


def test_pmml_stale_temps_go_and_converter_errors_keep_its_output(tmp_path, iris_logreg,
                                                                  monkeypatch, dead_pid):
    est, X = iris_logreg
    stale = tmp_path / f".m.pmml{TMP_INFIX}{dead_pid}-xyz.pmml"
    stale.write_text("<PMML partial")

    def fails(pipeline, path):
        os.write(1, b"converter says: no\n")  # (the Java converter writes to fd 1)
        raise RuntimeError("boom")

    to_pmml = _fake_converter(monkeypatch, fails)
    with pytest.raises(exporters.ExportError, match="boom") as info:
        to_pmml(est, tmp_path / "m.pmml", sample=X)
    assert "converter says: no" in str(info.value)  # the captured output, for the user
    assert list(tmp_path.iterdir()) == []  # the stale temp and this attempt's are gone
