"""The precision stage's branches import only downward: ``quantize`` dispatches to them, none of them
imports ``quantize`` (or another branch), so there is no import cycle inside the stage."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PRECISION = Path(__file__).resolve().parents[1] / "rtdeploy" / "precision"
BRANCHES = ("int8_stage", "fp16_stage", "int8_cpu_stage")
BELOW = ("artifact", "stats", "fp16_float_parts")


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


@pytest.mark.parametrize("module", BRANCHES + BELOW)
def test_branches_and_shared_helpers_do_not_import_upward(module):
    imported = _imports(PRECISION / f"{module}.py")
    forbidden = {"rtdeploy.precision.quantize"} | {f"rtdeploy.precision.{b}" for b in BRANCHES if b != module}
    assert not imported & forbidden, f"{module} imports {sorted(imported & forbidden)}"
