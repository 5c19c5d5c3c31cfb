"""The layer rule: imports point one way, ``tablescore`` -> ``conformance`` -> ``exporters`` ->
``scorer`` (-> ``protos``), never back. Every import statement of every module is read, those
inside functions included (a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: package -> the project packages it must never import
FORBIDDEN = {
    "protos": {"scorer", "exporters", "conformance", "tablescore"},
    "scorer": {"exporters", "conformance", "tablescore"},
    "exporters": {"conformance", "tablescore"},
    "conformance": {"tablescore"},
}


def imported_packages(path: Path, package: str) -> dict[str, int]:
    """Top-level package of every import in ``path`` -> the first line importing it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: stays inside its own package
                names = [package]
            else:
                names = [node.module or ""]
        else:
            continue
        for n in names:
            found.setdefault(n.split(".")[0], node.lineno)
    return found


def violations(root: Path) -> list[str]:
    out = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((root / package).rglob("*.py")):
            for top, line in imported_packages(path, package).items():
                if top in forbidden:
                    out.append(f"{path.relative_to(root)}:{line} imports {top}")
    return out


def test_no_import_runs_up_the_layers() -> None:
    assert violations(ROOT) == []


def test_the_check_sees_lazy_and_dotted_imports(tmp_path: Path) -> None:
    # the rule must catch an import inside a function and a dotted one, and allow relative ones
    pkg = tmp_path / "scorer"
    pkg.mkdir()
    (pkg / "a.py").write_text("def f():\n    import exporters.pmml\n")
    (pkg / "b.py").write_text("from conformance.check import check\n")
    (pkg / "c.py").write_text("from . import model\nfrom .x import y\nimport numpy\n")
    for other in ("protos", "exporters", "conformance"):
        (tmp_path / other).mkdir()
    assert violations(tmp_path) == ["scorer/a.py:2 imports exporters",
                                    "scorer/b.py:1 imports conformance"]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_every_layer_is_checked(package: str) -> None:
    assert list((ROOT / package).rglob("*.py")), f"no modules found under {package}/"
