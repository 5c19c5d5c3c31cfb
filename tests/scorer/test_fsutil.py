"""Written bundles honour the umask: 0755 / 0644 under umask 022, private under 077 (the
temporary directory they are written in is created 0700 and renamed into place)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

import exporters
from scorer.fsutil import apply_umask, current_umask


@pytest.mark.parametrize("mask,dirs,files", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600),
                                             (0o002, 0o775, 0o664)])
def test_exported_bundle_modes_follow_the_umask(tmp_path: Path, iris_logreg, mask, dirs,
                                                files) -> None:
    model, X = iris_logreg
    old = os.umask(mask)
    try:
        exporters.export(model, tmp_path / "b", sample=X[:5])
    finally:
        os.umask(old)
    path = tmp_path / "b"
    modes = {p.relative_to(path).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in [path, *path.rglob("*")]}
    assert modes["."] == dirs and modes["tables"] == dirs
    assert modes["manifest.json"] == files
    assert {m for p, m in modes.items() if p.endswith(".parquet")} == {files}


def test_apply_umask_and_current_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        fd, name = tempfile.mkstemp(dir=tmp_path)
        os.close(fd)
        d = tempfile.mkdtemp(dir=tmp_path)
        assert stat.S_IMODE(os.stat(name).st_mode) == 0o600  # mkstemp: private
        apply_umask(name, directory=False)
        apply_umask(d, directory=True)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(name).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o750


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_score_outputs_follow_the_umask(tmp_path: Path, mask: int, mode: int,
                                        suffix: str) -> None:
    import pandas as pd

    from scorer.files import write_table_atomic

    old = os.umask(mask)
    try:
        out = tmp_path / f"scores{suffix}"
        write_table_atomic(pd.DataFrame({"a": [1.0, 2.0]}), out)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary left behind
