"""The public API: what ``tokenledger`` exports, and the README's example, run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import tokenledger

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_exported_name_resolves() -> None:
    for name in tokenledger.__all__:
        assert getattr(tokenledger, name) is not None, name


def test_importing_the_package_stays_cheap() -> None:
    """The names are loaded when first used: the command line starts with this import."""
    code = "import sys, tokenledger; print('sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_readme_example_runs_with_the_public_api_only(tmp_path: Path) -> None:
    example = re.search(r"## In Python.*?```python\n(.*?)```", README.read_text(), re.S)
    assert example, "README lost its Python example"
    code = example.group(1)
    imports = [line for line in code.splitlines() if line.startswith(("import ", "from "))]
    assert imports
    assert all(line.startswith("from tokenledger import") for line in imports)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert "only an operator may create organizations" in out.stdout
