"""The serving recorder: windows, PSI per window, threshold events, exact merging."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import scorer
from scorer.monitoring import DriftRecorder, Profile, Thresholds
from scorer.monitoring.drift import compare_flat
from scorer.monitoring.profile import count_columns
from scorer.pipeline import ModelResolver, Pipeline

from .conftest import N, reference_data


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _shifted(seed: int = 5) -> np.ndarray:
    X = reference_data(seed)
    X[:, 1] += 1.0  # one standard deviation
    return X


def test_window_reports_psi_of_the_shifted_feature_only(linear_bundle: Path, caplog) -> None:
    clock = Clock()
    rec = DriftRecorder(60, clock=clock)
    pipe = Pipeline(ModelResolver({"linear": scorer.load(linear_bundle)}), recorders=[rec])
    X = _shifted()
    for chunk in np.array_split(X, 40):  # 100-row requests, and some single rows
        pipe("linear", chunk)
    for row in X[:5]:
        pipe("linear", row.reshape(1, -1))
    assert rec.report() == {}  # the window has not ended
    clock.t += 60
    with caplog.at_level(logging.INFO, logger="tablescore.drift"):
        (start, rows, drift), = rec.report().values()
    assert rows == N + 5 and start == 960.0
    psi = {d.name: d.psi for d in drift}
    assert psi["x1"] >= 0.2, psi
    assert max(psi["x0"], psi["x2"], psi["x3"]) < 0.1, psi
    assert psi["value"] >= 0.1  # the output moves with x1 (coefficient -2)
    events = [r for r in caplog.records if getattr(r, "event", "") == "drift"]
    assert {(r.feature, r.level) for r in events} >= {("x1", "alert")}
    assert "x0" not in {r.feature for r in events}


def test_windows_count_only_their_rows(linear_bundle: Path) -> None:
    clock = Clock(0.0)
    rec = DriftRecorder(10, clock=clock)
    model = scorer.load(linear_bundle)
    pipe = Pipeline(ModelResolver({"linear": model}), recorders=[rec])
    pipe("linear", reference_data(1, 300))
    clock.t = 10.5
    pipe("linear", reference_data(2, 200))
    (w,) = rec.current("linear", model.version)
    assert w.rows == 200 and w.start == 10.0
    assert rec.report()[("linear", model.version)][1] == 300
    profile = Profile.from_json(model.bundle.drift_reference)
    X = reference_data(2, 200)
    expected = count_columns(profile.zeros(), {f"x{j}": X[:, j] for j in range(4)},
                             model.score_arrays(X))
    assert np.array_equal(w.counts, expected)


def test_column_requests_with_strings(mixed_bundle) -> None:
    path, _ = mixed_bundle
    clock = Clock()
    rec = DriftRecorder(60, clock=clock)
    model = scorer.load(path)
    pipe = Pipeline(ModelResolver({"mixed": model}), recorders=[rec])
    cols = {"color": np.array(["red"] * 50 + ["purple"] * 10 + [None] * 5 + ["blue"] * 35,
                              dtype=object),
            "size": np.linspace(-1, 1, 100)}
    pipe("mixed", cols)
    (w,) = rec.current("mixed", model.version)
    layout = Profile.from_json(model.bundle.drift_reference)
    got = layout.with_counts(w.counts, w.rows)
    assert got.inputs[0].counts.tolist() == [5, 35, 0, 50, 10]  # missing, b, g, r, unseen
    label = next(f for f in got.outputs if f.name == "label")
    assert label.counts.sum() == 100 and label.counts[[0, -1]].sum() == 0
    pipe("mixed", pd.DataFrame(cols).iloc[:1].to_dict("list"))  # one row, looked up by dict
    assert rec.current("mixed", model.version)[0].rows == 101


def test_model_without_profile_is_not_counted(linear_bundle: Path, tmp_path: Path) -> None:
    from scorer.bundle import read_bundle, write_bundle

    b = read_bundle(linear_bundle)
    b.drift_reference = None
    write_bundle(b, tmp_path / "plain")
    rec = DriftRecorder(60)
    pipe = Pipeline(ModelResolver({"m": scorer.load(tmp_path / "plain")}), recorders=[rec])
    target, arrays = pipe("m", reference_data(0, 10))
    assert len(arrays["value"]) == 10
    assert rec.current("m", target.version) == [] and pipe.errors.snapshot() == {}


def test_thresholds_parse_and_levels() -> None:
    t = Thresholds.parse("0.05,0.3")
    assert (t.level(0.01), t.level(0.05), t.level(0.3), t.level(float("nan"))) == (
        "ok", "warn", "alert", "ok")
    with pytest.raises(ValueError, match="WARN,ALERT"):
        Thresholds.parse("high")
    with pytest.raises(ValueError, match="warn <= alert"):
        Thresholds.parse("0.3,0.1")


_WORKER = """
import json, sys
import numpy as np
import scorer
from scorer.monitoring import DriftRecorder
from scorer.pipeline import ModelResolver, Pipeline
bundle, data, lo, hi = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rec = DriftRecorder(300, clock=lambda: 1000.0)
m = scorer.load(bundle)
pipe = Pipeline(ModelResolver({"linear": m}), recorders=[rec])
X = np.load(data)[lo:hi]
for chunk in np.array_split(X, 7):
    pipe("linear", chunk)
(w,) = rec.current("linear", m.version)
print(json.dumps({"rows": w.rows, "counts": w.counts.tolist()}))
"""


def test_counts_of_two_processes_merge_to_one_process(linear_bundle: Path,
                                                      tmp_path: Path) -> None:
    data = tmp_path / "X.npy"
    np.save(data, _shifted(9))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    runs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(linear_bundle), str(data),
                              str(lo), str(hi)], stdout=subprocess.PIPE, env=env, text=True)
            for lo, hi in ((0, 1500), (1500, N), (0, N))]
    out = [json.loads(p.communicate(timeout=120)[0]) for p in runs]
    assert all(p.returncode == 0 for p in runs)
    merged = np.add(out[0]["counts"], out[1]["counts"])
    assert out[0]["rows"] + out[1]["rows"] == out[2]["rows"] == N
    assert merged.tolist() == out[2]["counts"]


def test_small_requests_count_as_one_batch(linear_bundle: Path, mixed_bundle) -> None:
    rec = DriftRecorder(60, clock=Clock())
    model = scorer.load(linear_bundle)
    pipe = Pipeline(ModelResolver({"linear": model}), recorders=[rec])
    X = reference_data(4, 700)  # 700 one-row requests: queued as bytes, counted together
    for row in X:
        pipe("linear", row.reshape(1, -1))
    (w,) = rec.current("linear", model.version)
    profile = Profile.from_json(model.bundle.drift_reference)
    expected = count_columns(profile.zeros(), {f"x{j}": X[:, j] for j in range(4)},
                             model.score_arrays(X))
    assert w.rows == 700 and np.array_equal(w.counts, expected)
    path, df = mixed_bundle
    mixed = scorer.load(path)
    pipe = Pipeline(ModelResolver({"mixed": mixed}), recorders=[rec])
    for i in range(40):  # one-row column requests, some asking for the label only
        pipe("mixed", {"color": df["color"].to_numpy()[i:i + 1],
                       "size": df["size"].to_numpy()[i:i + 1]},
             outputs=["label"] if i % 3 == 0 else None)
    (w,) = rec.current("mixed", mixed.version)
    got = Profile.from_json(mixed.bundle.drift_reference).with_counts(w.counts, w.rows)
    assert got.inputs[0].counts[1:4].tolist() == [
        (df["color"][:40] == c).sum() for c in ("blue", "green", "red")]
    assert next(f for f in got.outputs if f.name == "label").rows == 40


def test_integer_labels_counted_like_their_text(tmp_path: Path) -> None:
    """Typed labels are looked up among the categories' texts in compiled code: the counts
    equal the text lookup of CategoryMap (count_columns), for one-row and larger requests."""
    from sklearn.linear_model import LogisticRegression

    import exporters

    rng = np.random.default_rng(8)
    X = rng.normal(size=(900, 3))
    y = np.digitize(X[:, 0], [-0.5, 0.5]) * 5 - 3  # classes -3, 2, 7
    exporters.export(LogisticRegression().fit(X, y), tmp_path / "m", sample=X, name="m")
    model = scorer.load(tmp_path / "m")
    rec = DriftRecorder(60, clock=Clock(), flush_interval=0)
    pipe = Pipeline(ModelResolver({"m": model}), recorders=[rec])
    for row in X[:300]:
        pipe("m", row.reshape(1, -1))
    pipe("m", X[300:])
    (w,) = rec.current("m", model.version)
    profile = Profile.from_json(model.bundle.drift_reference)
    expected = count_columns(profile.zeros(), {f.name: X[:, j] for j, f in
                                               enumerate(model.bundle.inputs)},
                             model.score_arrays(X))
    assert w.rows == 900 and np.array_equal(w.counts, expected)
    label = next(f for f in profile.with_counts(w.counts, w.rows).outputs
                 if f.name == "label")
    assert label.categories == ["-3", "2", "7"] and label.counts[[0, -1]].sum() == 0


def test_full_queue_drops_and_counts_the_dropped_rows(linear_bundle: Path) -> None:
    # no counting thread: nothing counts the queue until asked
    rec = DriftRecorder(60, clock=Clock(), flush_interval=0, queue_requests=10)
    model = scorer.load(linear_bundle)
    pipe = Pipeline(ModelResolver({"linear": model}), recorders=[rec])
    X = reference_data(6, 16)
    pipe("linear", X[:1])  # the first one-row request (it learns the byte layout)
    assert rec.current("linear", model.version)[0].rows == 1
    for row in X[1:]:
        pipe("linear", row.reshape(1, -1))
    (w,) = rec.current("linear", model.version)
    assert w.rows == 11 and rec.dropped("linear", model.version) == 5
    from prometheus_client import CollectorRegistry, generate_latest

    reg = CollectorRegistry()
    reg.register(rec)
    text = generate_latest(reg).decode()
    assert (f'tablescore_drift_dropped_rows_total{{model="linear",version="{model.version}"}}'
            ' 5.0') in text


def test_one_row_requests_with_strings_take_the_general_queue(mixed_bundle) -> None:
    path, df = mixed_bundle
    model = scorer.load(path)
    rec = DriftRecorder(60, clock=Clock(), flush_interval=0)
    pipe = Pipeline(ModelResolver({"mixed": model}), recorders=[rec])
    rows = df.iloc[:30].to_numpy(dtype=object)  # an object matrix: color, size
    for row in rows:
        pipe("mixed", row.reshape(1, -1))
    assert pipe.errors.snapshot() == {}
    (w,) = rec.current("mixed", model.version)
    got = Profile.from_json(model.bundle.drift_reference).with_counts(w.counts, w.rows)
    assert w.rows == 30
    assert got.inputs[0].counts[1:4].tolist() == [
        (df["color"][:30] == c).sum() for c in ("blue", "green", "red")]


def test_reused_input_and_modified_outputs_count_what_was_scored(linear_bundle: Path) -> None:
    """In-process callers may refill one input array for every call and modify the outputs
    they get: one-row and small requests are counted as they were scored."""
    model = scorer.load(linear_bundle)
    rec = DriftRecorder(60, clock=Clock(), flush_interval=0)
    pipe = Pipeline(ModelResolver({"linear": model}), recorders=[rec])
    X = _shifted(11)[:600]
    row = np.empty((1, 4))
    for x in X[:300]:  # one-row requests from one buffer
        row[0] = x
        _, out = pipe("linear", row)
        out["value"][:] = 1e9
    block = np.empty((10, 4))
    for a in range(300, 600, 10):  # small requests from one buffer
        block[:] = X[a:a + 10]
        _, out = pipe("linear", block)
        out["value"][:] = -1e9
    row[0] = np.nan  # what the buffers hold when the counting happens
    block[:] = np.nan
    (w,) = rec.current("linear", model.version)
    profile = Profile.from_json(model.bundle.drift_reference)
    expected = count_columns(profile.zeros(), {f"x{j}": X[:, j] for j in range(4)},
                             model.score_arrays(X))
    assert w.rows == 600 and np.array_equal(w.counts, expected)


def _sampled_counts(bundle: Path, X: np.ndarray, sample: float,
                    sizes: list[int]) -> tuple[int, np.ndarray]:
    model = scorer.load(bundle)
    rec = DriftRecorder(60, clock=Clock(), flush_interval=0, sample=sample)
    pipe = Pipeline(ModelResolver({"linear": model}), recorders=[rec])
    a = 0
    for n in sizes:
        pipe("linear", X[a:a + n])
        a += n
    (w,) = rec.current("linear", model.version)
    return w.rows, w.counts


def test_sampling_counts_every_kth_row_of_large_requests(linear_bundle: Path) -> None:
    model = scorer.load(linear_bundle)
    profile = Profile.from_json(model.bundle.drift_reference)
    X = _shifted(12)
    sizes = [1000, 100, 1, 2899]  # large requests sampled, small ones whole
    rows, counts = _sampled_counts(linear_bundle, X, 0.1, sizes)
    picked = np.concatenate([np.arange(0, 1000, 10), np.arange(1000, 1101),
                             1101 + np.arange(0, 2899, 10)])
    expected = count_columns(profile.zeros(), {f"x{j}": X[picked, j] for j in range(4)},
                             model.score_arrays(X[picked]))
    assert rows == picked.size == 100 + 101 + 290 and np.array_equal(counts, expected)
    # deterministic: the same requests give the same counts, and two replicas sharing the
    # requests add up to one process that saw them all
    assert np.array_equal(_sampled_counts(linear_bundle, X, 0.1, sizes)[1], counts)
    first = _sampled_counts(linear_bundle, X[:1101], 0.1, sizes[:3])
    second = _sampled_counts(linear_bundle, X[1101:], 0.1, sizes[3:])
    assert first[0] + second[0] == rows and np.array_equal(first[1] + second[1], counts)
    # the shifted feature still stands out on a tenth of the rows
    drift = {d.name: d.psi for d in compare_flat(profile, profile.flat_counts(), counts)}
    assert drift["x1"] >= 0.2 and max(drift["x0"], drift["x2"], drift["x3"]) < 0.1
    with pytest.raises(ValueError, match="sampling rate"):
        DriftRecorder(60, sample=0)


def test_one_row_records_from_threads_beside_the_counting_thread(linear_bundle: Path) -> None:
    """Request threads append whole records while the counting thread takes them: every
    row is counted once."""
    import threading

    model = scorer.load(linear_bundle)
    rec = DriftRecorder(60, clock=Clock(), flush_interval=0.001)
    pipe = Pipeline(ModelResolver({"linear": model}), recorders=[rec])
    X = reference_data(13, 2000)
    pipe("linear", X[:1])  # learns the record layout

    def send(lo: int) -> None:
        for row in X[lo:lo + 500]:
            pipe("linear", row.reshape(1, -1))

    threads = [threading.Thread(target=send, args=(lo,)) for lo in (1, 501, 1001, 1501)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (w,) = rec.current("linear", model.version)
    rec.close()
    profile = Profile.from_json(model.bundle.drift_reference)
    expected = count_columns(profile.zeros(), {f"x{j}": X[:, j] for j in range(4)},
                             model.score_arrays(X))
    assert w.rows == len(X) and np.array_equal(w.counts, expected)
    assert rec.dropped("linear", model.version) == 0


def _monitor(rec: DriftRecorder):  # type: ignore[no-untyped-def]
    (m,) = [m for m in rec._monitors.values() if m is not None]
    return m


def test_one_row_requests_are_scored_again_for_their_outputs(linear_bundle: Path) -> None:
    """A one-row request of numbers leaves only its input row: the counting thread scores
    those rows again in a batch (the same outputs); one whose outputs are not all there (a
    score stage of its own) is queued with them, and only those are counted."""
    model = scorer.load(linear_bundle)
    rec = DriftRecorder(60, clock=Clock(), flush_interval=0)
    pipe = Pipeline(ModelResolver({"linear": model}), recorders=[rec])
    X = _shifted(21)[:400]
    for x in X[:300]:
        pipe("linear", x.reshape(1, -1))
    m = _monitor(rec)
    assert len(m.rowx) == 299 * X[:1].nbytes  # (the first one: learnt from, queued)
    assert len(m.queue) == 1
    no_outputs = Pipeline(ModelResolver({"linear": model}), lambda t, r: {},
                          recorders=[rec])
    for x in X[300:]:
        no_outputs("linear", x.reshape(1, -1))
    assert len(m.queue) == 101
    (w,) = rec.current("linear", model.version)
    profile = Profile.from_json(model.bundle.drift_reference)
    expected = count_columns(profile.zeros(), {f"x{j}": X[:, j] for j in range(4)},
                             model.score_arrays(X[:300]))
    assert w.rows == 400 and np.array_equal(w.counts, expected)


def test_one_row_inputs_count_in_the_window_they_were_recorded_in(
        linear_bundle: Path) -> None:
    clock = Clock(1000.0)
    model = scorer.load(linear_bundle)
    rec = DriftRecorder(60, clock=clock, flush_interval=0)
    pipe = Pipeline(ModelResolver({"linear": model}), recorders=[rec])
    X = reference_data(22, 30)
    for x in X[:12]:
        pipe("linear", x.reshape(1, -1))
    clock.t = 1070.0  # the next window: the buffer of the first is set aside, not counted yet
    for x in X[12:]:
        pipe("linear", x.reshape(1, -1))
    assert len(_monitor(rec).xold) == 1
    (start, rows, _), = rec.report().values()
    assert (start, rows) == (960.0, 12)
    (w,) = rec.current("linear", model.version)
    profile = Profile.from_json(model.bundle.drift_reference)
    expected = count_columns(profile.zeros(), {f"x{j}": X[12:, j] for j in range(4)},
                             model.score_arrays(X[12:]))
    assert w.start == 1020.0 and w.rows == 18 and np.array_equal(w.counts, expected)


def test_one_row_inputs_of_an_unloaded_model_are_still_counted(linear_bundle: Path,
                                                               caplog) -> None:
    import gc

    model = scorer.load(linear_bundle)
    version = model.version
    rec = DriftRecorder(60, clock=Clock(), flush_interval=0)
    pipe = Pipeline(ModelResolver({"linear": model}), recorders=[rec])
    X = reference_data(23, 20)
    for x in X:
        pipe("linear", x.reshape(1, -1))
    profile = Profile.from_json(model.bundle.drift_reference)
    del pipe, model
    gc.collect()
    with caplog.at_level(logging.WARNING, logger="tablescore.drift"):
        (w,) = rec.current("linear", version)
    assert "unloaded before its last 19 rows' outputs were counted" in caplog.text
    # the first row (its request taught the layout) was queued with its outputs
    got = profile.with_counts(w.counts, w.rows)
    assert w.rows == 20
    assert all(f.counts.sum() == 20 for f in got.inputs)
    assert all(f.counts.sum() == 1 for f in got.outputs)


def test_one_row_rows_are_scored_again_serially(linear_bundle: Path) -> None:
    """The counting thread never launches a parallel kernel (one beside a request thread's
    aborts a process on Numba's workqueue layer): its batches run serially."""
    model = scorer.load(linear_bundle)
    calls: list[tuple[int, bool]] = []
    run_rows = model._run_rows

    def spy(ws, **kw):  # type: ignore[no-untyped-def]
        calls.append((ws.shape[0], kw.get("serial", False)))
        return run_rows(ws, **kw)

    model._run_rows = spy  # type: ignore[method-assign]
    rec = DriftRecorder(60, clock=Clock(), flush_interval=0)
    pipe = Pipeline(ModelResolver({"linear": model}), recorders=[rec])
    X = reference_data(24, 3000)
    for x in X:
        pipe("linear", x.reshape(1, -1))
    calls.clear()
    (w,) = rec.current("linear", model.version)
    assert w.rows == 3000 and calls == [(2999, True)]
