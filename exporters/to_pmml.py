"""PMML export through sklearn2pmml (the only part of tablescore that runs a JVM).

``to_pmml`` wraps the user's fitted estimator in a PMMLPipeline, records verification data
from ``sample`` (so the document carries a ModelVerification element that any PMML consumer,
tablescore's reader included, re-checks at load), converts it with sklearn2pmml, and writes the
file atomically.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.errors import ExportError, UnsupportedEstimatorError
from scorer.files import TMP_INFIX, remove_stale_temps
from scorer.fsutil import apply_umask
from scorer.ir import Field
from scorer.tolerances import Tolerance, tolerance_for

from . import infer_fields
from .registry import export_into

DEFAULT_VERIFICATION_ROWS = 32


def _check_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise ExportError(
            "PMML export needs Java (JRE 11 or newer) on PATH, and none was found; install one "
            "(e.g. `apt-get install openjdk-17-jre-headless`). Scoring never needs Java: "
            "export to a bundle instead with exporters.export()")
    try:
        subprocess.run([java, "-version"], capture_output=True, check=True, timeout=30)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        raise ExportError(f"PMML export needs a working Java; '{java} -version' failed: "
                          f"{exc}") from exc
    return java


def to_pmml(est: Any, path: str | os.PathLike[str], *, sample: Any = None,
            target_name: str | None = None, feature_names: list[str] | None = None,
            verification_rows: int = DEFAULT_VERIFICATION_ROWS) -> Path:
    """Convert a fitted scikit-learn estimator or pipeline to a PMML document.

    Parameters
    ----------
    est : fitted estimator
        What ``exporters.export`` accepts, as far as sklearn2pmml supports it.
    path : path-like
        The ``.pmml`` file to write (atomically: temp file + rename).
    sample : DataFrame or array of shape (n_rows, n_features), optional
        Its first ``verification_rows`` rows become the document's ModelVerification.
    target_name : str, optional
        Name of the target field in the document (default ``"y"``).
    feature_names : list of str, optional
        Input field names for a model fitted on a bare array.

    Raises
    ------
    ExportError
        Java or sklearn2pmml missing (the message says which and how to get it), or the
        converter refused the model (its message is included).
    """
    _check_java()
    try:
        from sklearn2pmml import sklearn2pmml
        from sklearn2pmml.pipeline import PMMLPipeline
    except ImportError as exc:
        raise ExportError("PMML export needs the sklearn2pmml package: "
                          "pip install 'tablescore[export]'") from exc
    import pandas as pd

    fields, _ = infer_fields(est, sample, feature_names=feature_names)
    names = [f.name for f in fields]
    pipeline = PMMLPipeline([("model", _keep_shared_inputs_double(est))])
    pipeline.active_fields = np.asarray(names)
    pipeline.target_fields = np.asarray([target_name or "y"])
    if sample is not None and verification_rows > 0:
        rows = sample.iloc[:verification_rows] if hasattr(sample, "iloc") else pd.DataFrame(
            np.asarray(sample)[:verification_rows], columns=names)
        tol = verification_tolerance(est, fields)
        # sklearn2pmml writes these as each output VerificationField's precision (relative)
        # and zeroThreshold (absolute), which is what a reader checks the rows against; its
        # default 1e-13 cannot hold for float32 outputs (XGBoost), whose recorded values are
        # float32 numbers and whose margins are float32 sums
        pipeline.verify(rows, precision=tol.rel, zeroThreshold=tol.abs)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)  # what a SIGKILLed conversion of the same target left
    # the pid in the name is how remove_stale_temps tells a dead writer's temp from a live one
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}{TMP_INFIX}{os.getpid()}-",
                               suffix=".pmml", dir=target.parent)
    os.close(fd)
    log: list[str] = []
    try:
        with _captured_output() as log:
            sklearn2pmml(pipeline, tmp)
        apply_umask(tmp, directory=False)  # mkstemp made it 0600: readable as open() would be
        os.replace(tmp, target)
    except BaseException as exc:  # also SIGTERM / Ctrl-C (the CLI raises them): no temp left
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, ExportError) or not isinstance(exc, Exception):
            raise
        raise ExportError(f"sklearn2pmml could not convert {type(est).__name__}: {exc}\n"
                          f"{''.join(log)[-2000:]}") from exc
    return target


def _keep_shared_inputs_double(est: Any) -> Any:
    """``est``, or a deep copy whose Voting / Stacking ensembles (and every estimator inside
    them) carry the sklearn2pmml option ``input_float=False``.

    Why: by default (``input_float=True``) the converter lets a tree narrow the field it
    splits on to ``dataType="float"`` in place instead of adding a ``float(x)`` cast. For a
    lone tree that is harmless (scikit-learn's trees read float32 anyway), but inside an
    ensemble the field is shared: the DataField becomes float and every other member (a
    logistic regression, a stacker's passthrough) then reads float32-rounded inputs, while
    scikit-learn computes them in float64 (~7e-8 off on iris). A PMML consumer that honours
    ``dataType="float"`` (JPMML-Evaluator, tablescore) must round, so the fix belongs in the
    conversion: with the option off each tree gets its own cast DerivedField and shared
    fields stay double. The user's estimator is left untouched.
    """
    if not _mark_shared(est, dry_run=True):
        return est
    est = copy.deepcopy(est)
    _mark_shared(est, dry_run=False)
    return est


def _mark_shared(obj: Any, *, dry_run: bool, inside: bool = False,
                 seen: set[int] | None = None) -> bool:
    """Walk the estimators reachable from ``obj`` (attributes, lists, tuples, dicts); set
    ``input_float=False`` in ``pmml_options_`` of each one that is, or lies inside, a
    Voting / Stacking ensemble (an option the user set is kept). Returns whether any such
    ensemble was found."""
    from sklearn.base import BaseEstimator
    from sklearn.ensemble import (
        StackingClassifier,
        StackingRegressor,
        VotingClassifier,
        VotingRegressor,
    )

    seen = set() if seen is None else seen
    if id(obj) in seen:
        return False
    seen.add(id(obj))
    if isinstance(obj, dict):
        children: list[Any] = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        children = list(obj)
    elif isinstance(obj, BaseEstimator):
        inside = inside or isinstance(obj, (VotingClassifier, VotingRegressor,
                                            StackingClassifier, StackingRegressor))
        if inside and not dry_run:
            options = dict(getattr(obj, "pmml_options_", None) or {})
            options.setdefault("input_float", False)
            obj.pmml_options_ = options
        children = list(vars(obj).values())
    else:
        return False
    found = inside
    for child in children:
        found = _mark_shared(child, dry_run=dry_run, inside=inside, seen=seen) or found
    return found


def verification_tolerance(est: Any, fields: list[Field]) -> Tolerance:
    """The tolerance a PMML document's verification rows are written with.

    The same as a bundle of ``est`` records (:func:`scorer.tolerances.tolerance_for` of the
    families its IR uses): the document describes the same arithmetic (XGBoost's float32
    accumulation, ``x-mathContext="float"``), so it reproduces the original model to the same
    precision. An estimator tablescore cannot export itself gets the float64 default.
    """
    g = Graph([Field(name=f.name, type=f.type) for f in fields])  # fresh: Graph mutates them
    try:
        export_into(est, g, list(g.order))
    except (UnsupportedEstimatorError, ExportError):
        return tolerance_for([])
    return tolerance_for(sorted(g.families))


@contextlib.contextmanager
def _captured_output() -> Iterator[list[str]]:
    """Capture the converter's stdout / stderr at the file-descriptor level (it runs a Java
    subprocess that prints a banner): shown only when the conversion fails. Yields a list
    that holds the text once the block has ended (the capture file is closed by then)."""
    sys.stdout.flush()
    sys.stderr.flush()
    text: list[str] = []
    with tempfile.TemporaryFile(mode="w+") as log:
        saved = os.dup(1), os.dup(2)
        try:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            yield text
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            log.seek(0)
            text.append(log.read())
