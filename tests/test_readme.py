"""README and packaging claims that were false (#18): the install that works, what an install
brings, the license file, the columns ``score()`` returns."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_license_file_is_the_apache_2_license_pyproject_names():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text) > 10_000


def test_readme_installs_from_a_clone_not_an_index():
    # tablescore is on no package index: `pip install tablescore[...]` cannot work
    assert not re.search(r"pip install ['\"]?tablescore\[", README)
    assert "pip install -e '.[export]'" in README


def test_readme_names_every_dependency_an_install_brings():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "needs numpy, numba, pyarrow and pandas only" not in README
    for dep in pyproject["project"]["dependencies"]:
        name = re.split(r"[<>=!~ \[]", dep, maxsplit=1)[0]
        short = name.removeprefix("grpcio-").replace("-checking", "")
        assert name in README or short in README, name


def test_readme_score_lists_decision_columns():
    line = next(ln for ln in README.splitlines() if "model.score(df)" in ln)
    assert "probability(<class>)" in line and "decision(<class>)" in line and "label" in line
