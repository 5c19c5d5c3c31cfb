"""tablescore package: a reproducible wheel (PEP 427) holding the bundle and a module that
loads it; installed offline, it scores as the bundle does."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import exporters
import scorer
from scorer.package import pep440_version
from tablescore.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, iris_logreg):
    model, X = iris_logreg
    path = tmp_path_factory.mktemp("pkg") / "bundle"
    exporters.export(model, path, sample=X, version="3")
    return path


def test_wheel_is_reproducible_and_well_formed(bundle, tmp_path, capsys):
    assert main(["package", str(bundle), "--name", "churn-model", "--out",
                 str(tmp_path / "a")]) == 0
    assert "churn_model-3-py3-none-any.whl" in capsys.readouterr().out
    os.utime(bundle / "manifest.json", (1e9, 1e9))  # other file times: same wheel
    assert main(["package", str(bundle), "--name", "churn-model", "--out",
                 str(tmp_path / "b")]) == 0
    a, b = (tmp_path / d / "churn_model-3-py3-none-any.whl" for d in "ab")
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    with zipfile.ZipFile(a) as zf:
        names = zf.namelist()
        assert names[-1] == "churn_model-3.dist-info/RECORD"
        assert all(zi.date_time == (1980, 1, 1, 0, 0, 0) for zi in zf.infolist())
        assert "churn_model/bundle/manifest.json" in names
        meta = zf.read("churn_model-3.dist-info/METADATA").decode()
        assert "Name: churn-model\n" in meta and "Version: 3\n" in meta
        assert "Requires-Dist: tablescore\n" in meta
        assert "Tag: py3-none-any" in zf.read("churn_model-3.dist-info/WHEEL").decode()
        for line in zf.read("churn_model-3.dist-info/RECORD").decode().splitlines():
            path, digest, size = line.split(",")
            if path.endswith("RECORD"):
                continue
            data = zf.read(path)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == "sha256=" + want.decode() and int(size) == len(data)
        manifest = json.loads(zf.read("churn_model/bundle/manifest.json"))
    assert manifest["fingerprint"] == scorer.load(bundle).fingerprint


def test_wheel_installs_offline_and_scores_as_the_bundle(bundle, tmp_path, iris_logreg):
    _, X = iris_logreg
    assert main(["package", str(bundle), "--name", "churn-model", "--out",
                 str(tmp_path / "dist")]) == 0
    wheel = tmp_path / "dist" / "churn_model-3-py3-none-any.whl"
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    "--target", str(site), str(wheel)], check=True, timeout=300)
    np.save(tmp_path / "X.npy", X)
    code = ("import sys, numpy as np, churn_model; m = churn_model.load(); "
            f"np.save(sys.argv[1], m.predict_proba(np.load(r'{tmp_path / 'X.npy'}'))); "
            "print(churn_model.__version__, churn_model.bundle_path())")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "p.npy")], env=env,
                         check=True, capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    version, where = res.stdout.split()
    assert version == "3" and Path(where).is_relative_to(site)
    got = np.load(tmp_path / "p.npy")
    want = scorer.load(bundle).predict_proba(X)
    assert np.array_equal(got.view(np.int64), want.view(np.int64))


@pytest.mark.parametrize(("given", "expected"), [
    ("3", "3"), ("v1.2", "1.2"), ("2.0rc1", "2.0rc1"), ("2024-06-01", "2024.6.1"),
    ("blue green", "0+blue.green"), ("", "0")])
def test_bundle_versions_become_pep440(given, expected):
    assert pep440_version(given) == expected


@pytest.mark.parametrize("name", ["9lives", "churn model", "a/b", "scorer", "tablescore", "numpy",
                                  "json", "grpc"])
def test_names_that_cannot_be_modules_are_refused(bundle, tmp_path, name, capsys):
    assert main(["package", str(bundle), "--name", name, "--out", str(tmp_path)]) == 2
    assert "--name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_bundle_texts_cannot_write_metadata_or_code(iris_logreg, tmp_path):
    """A bundle from elsewhere names its model: a line break must not add a METADATA header
    (a Requires-Dist pip would install), nor quotes or backslashes end the module's strings."""
    model, X = iris_logreg
    evil = 'm\nRequires-Dist: six\r\nX: """ \\N{oops} \'\'\' \\'
    path = tmp_path / "evil"
    exporters.export(model, path, sample=X, name=evil, version='1\nRequires-Dist: six')
    assert main(["package", str(path), "--name", "evil-model", "--out",
                 str(tmp_path / "w"), "--version", "1.0"]) == 0
    wheel = tmp_path / "w" / "evil_model-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read("evil_model-1.0.dist-info/METADATA").decode()
        source = zf.read("evil_model/__init__.py").decode()
    assert [ln for ln in meta.splitlines() if ln.startswith("Requires-Dist")] == \
        ["Requires-Dist: tablescore"]
    assert len(meta.splitlines()) == 6
    namespace: dict = {"__file__": str(tmp_path / "evil_model" / "__init__.py")}
    exec(compile(source, "evil_model/__init__.py", "exec"), namespace)
    assert namespace["MODEL"] == evil and namespace["MODEL_VERSION"] == '1\nRequires-Dist: six'


@pytest.mark.parametrize("version", ["1.0 beta", "latest", "1.0-rc1", "2024-06-01"])
def test_a_version_given_must_be_pep440_itself(bundle, tmp_path, version, capsys):
    assert main(["package", str(bundle), "--name", "churn-model", "--out", str(tmp_path),
                 "--version", version]) == 2
    assert "PEP 440" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
