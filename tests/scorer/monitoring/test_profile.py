"""Reference profiles: built at export, stored in the manifest, read back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import exporters
import scorer
from scorer.bundle import read_bundle, write_bundle
from scorer.errors import BundleFormatError
from scorer.monitoring import Profile, compare
from scorer.monitoring.profile import build_profile, count_columns

from .conftest import reference_data


def test_profile_round_trips_through_writer_and_reader(linear_bundle: Path,
                                                       tmp_path: Path) -> None:
    b = read_bundle(linear_bundle)
    p = Profile.from_json(b.drift_reference)
    assert [f.name for f in p.inputs] == ["x0", "x1", "x2", "x3"]
    assert [f.name for f in p.outputs] == ["value"]
    assert p.rows == 4000 and all(f.rows == 4000 for f in p.features)
    # 10 quantile bins: 11 edges, + missing, below, above; a sample has nothing outside
    assert all(f.bins == 13 and f.counts[[0, 1, -1]].sum() == 0 for f in p.features)
    write_bundle(b, tmp_path / "copy")
    again = Profile.from_json(read_bundle(tmp_path / "copy").drift_reference)
    assert again.to_json() == p.to_json()
    assert again.same_layout(p) and np.array_equal(again.flat_counts(), p.flat_counts())
    assert all(np.array_equal(a.edges, e.edges) for a, e in zip(again.inputs, p.inputs,
                                                                 strict=True))


def test_reference_counts_the_sample_and_its_outputs(linear_bundle: Path) -> None:
    model = scorer.load(linear_bundle)
    p = Profile.from_json(model.bundle.drift_reference)
    X = reference_data()
    cols = {f"x{j}": X[:, j] for j in range(4)}
    counts = count_columns(p.zeros(), cols, model.score_arrays(X))
    assert np.array_equal(counts, p.flat_counts())
    assert all(d.psi == 0.0 for d in compare(p, p))


def test_categorical_input_and_label_profiles(mixed_bundle) -> None:
    path, df = mixed_bundle
    p = Profile.from_json(read_bundle(path).drift_reference)
    color = p.inputs[0]
    assert color.kind == "categorical" and color.categories == ["blue", "green", "red"]
    assert color.counts[1:4].tolist() == [(df["color"] == c).sum()
                                          for c in ("blue", "green", "red")]
    assert color.counts[0] == color.counts[-1] == 0  # missing, unseen
    label = next(f for f in p.outputs if f.name == "label")
    assert label.kind == "categorical" and label.categories == ["no", "yes"]
    layout = p.zeros()
    counts = count_columns(layout, {"color": np.array(["red", None, "purple", "blue"],
                                                      dtype=object)}, {})
    got = layout.with_counts(counts, 4).inputs[0].counts
    assert got.tolist() == [1, 1, 0, 1, 1]  # missing, blue, green, red, unseen


def test_bundle_without_profile_still_loads(tmp_path: Path, linear_bundle: Path) -> None:
    b = read_bundle(linear_bundle)
    b.drift_reference = None
    write_bundle(b, tmp_path / "plain")
    manifest = json.loads((tmp_path / "plain" / "manifest.json").read_text())
    assert manifest["drift_reference"] is None
    m = scorer.load(tmp_path / "plain")
    assert m.bundle.drift_reference is None
    del manifest["drift_reference"]  # a 1.0 writer may also leave the key out
    (tmp_path / "plain" / "manifest.json").write_text(json.dumps(manifest))
    assert read_bundle(tmp_path / "plain", verify_hashes=False).drift_reference is None


def test_export_without_bins_stores_no_profile(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    X = reference_data(n=100)
    b = exporters.export(LinearRegression().fit(X, X[:, 0]), tmp_path / "m", sample=X,
                         drift_bins=0)
    assert b.drift_reference is None


def test_schema_refuses_a_malformed_profile(tmp_path: Path, linear_bundle: Path) -> None:
    shutil.copytree(linear_bundle, tmp_path / "bad")
    mpath = tmp_path / "bad" / "manifest.json"
    manifest = json.loads(mpath.read_text())
    manifest["drift_reference"]["inputs"][0]["counts"][2] = -1
    mpath.write_text(json.dumps(manifest))
    with pytest.raises(BundleFormatError, match="drift_reference"):
        read_bundle(tmp_path / "bad", verify_hashes=False)


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.update(profile_version=2), "profile_version"),
    (lambda d: d["inputs"][0].update(edges=[1.0, 0.5, 2.0]), "increasing"),
    (lambda d: d["inputs"][0]["counts"].pop(), "counts"),
    (lambda d: d["outputs"].append({"name": "c", "kind": "categorical", "categories": ["a"],
                                    "counts": [0, 1]}), "categories need"),
])
def test_malformed_profile_is_named(linear_bundle: Path, edit, match: str) -> None:
    d = json.loads(json.dumps(read_bundle(linear_bundle).drift_reference))
    edit(d)
    with pytest.raises(BundleFormatError, match=match):
        Profile.from_json(d)


def test_profiles_merge_by_adding_counts() -> None:
    X = reference_data(n=1000)
    cols = {"a": X[:, 0], "b": np.where(X[:, 1] > 0, "p", "n").astype(object)}
    p = build_profile(cols, {}, categorical={"b": None})
    halves = [count_columns(p.zeros(), {k: v[s] for k, v in cols.items()}, {})
              for s in (slice(0, 400), slice(400, None))]
    merged = p.zeros().with_counts(halves[0], 400).merge(p.zeros().with_counts(halves[1], 600))
    assert np.array_equal(merged.flat_counts(), p.flat_counts()) and merged.rows == 1000
    with pytest.raises(ValueError, match="bins"):
        p.merge(build_profile({"a": X[:, 0] * 2}, {}, categorical={}))


@pytest.mark.parametrize("n", [5, 5000])  # the per-value path and the distinct-values one
def test_category_codes_read_numbers_as_the_model_does(n):
    """An integer-coded category column that pandas made float (a missing value in it):
    1.0 names category "1", as the model's input encoder reads it, not "1.0" (unseen)."""
    from scorer.monitoring.profile import CategoryMap

    cmap = CategoryMap(["1", "2", "3", "x"])
    vals = np.resize(np.array([1.0, 2.0, 3.0, np.nan, 2.5]), n)
    want = np.resize(np.array([0.0, 1.0, 2.0, np.nan, -1.0]), n)
    np.testing.assert_array_equal(cmap.codes(vals), want)
    np.testing.assert_array_equal(cmap.codes(np.resize(np.array([1, 3], dtype=np.int64), n)),
                                  np.resize(np.array([0.0, 2.0]), n))
    obj = np.resize(np.array([1.0, "x", None, "2"], dtype=object), n)
    np.testing.assert_array_equal(cmap.codes(obj), np.resize(np.array([0.0, 3.0, np.nan, 1.0]),
                                                             n))
