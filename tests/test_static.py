"""The code's own checks: ruff (style/bugs) and mypy --strict (types), as configured in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed (pip install -e .[test])")
def test_ruff() -> None:
    res = subprocess.run(["ruff", "check", "imagebuild", "tests", "bench"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_strict() -> None:
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e .[test])")
    res = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_lazy_app_layer_names_what_it_exports() -> None:
    """`imagebuild.app` imports a module when one of its names is first asked for: every name in __all__ is
    defined by the module the table says, and nothing else is."""
    import imagebuild.app as app

    assert sorted(app.__all__) == sorted(app._WHERE)
    for name in app.__all__:
        assert callable(getattr(app, name)), name
    with pytest.raises(AttributeError):
        app.no_such_name  # noqa: B018
