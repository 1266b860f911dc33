"""``make test`` (README's test command, the one ``.ci/run`` calls) shows pytest's summary line."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_make_test_is_the_readme_command_and_ci_runs_it() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make test    # installs into .venv with the dev tools and runs the test suite" in readme
    commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert commands[-1] == "make test"


def test_the_make_test_pytest_command_prints_the_count(tmp_path: Path) -> None:
    """The recipe's pytest flags with the project's pytest settings (pyproject), on two tiny tests."""
    recipe = re.search(r"^test:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), flags=re.M)
    assert recipe, "no test recipe in the Makefile"
    words = shlex.split(recipe.group(1))
    assert words[:3] == ["$(BIN)/python", "-m", "pytest"], words
    (tmp_path / "test_tiny.py").write_text(
        "import pytest\n\ndef test_one():\n    pass\n\n@pytest.mark.skip('shown')\ndef test_two():\n    pass\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *words[3:], "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path),
         "-p", "no:cacheprovider", str(tmp_path / "test_tiny.py")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^1 passed, 1 skipped in [\d.]+s$", result.stdout, flags=re.M), result.stdout
