"""The package's floors only point down: cli -> api -> orchestration -> stages -> core.

Every import inside ``rtdeploy`` is read from the source (module level and inside functions), so
a lazy import cannot hide an upward dependency or a cycle. The test names both modules of any
offending edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rtdeploy"

# First name under rtdeploy -> floor. A module that is not listed fails the test: a new one must
# be given a floor on purpose.
FLOORS = {
    "cli": 5,
    "api": 4, "doctor": 4,
    "pipeline": 3, "bench": 3, "make_or_reuse": 3,
    "export": 2, "precision": 2, "trt": 2, "validate": 2, "serving": 2,
    "models": 1, "data": 1, "runners": 1, "artifacts": 1, "errors": 1, "machine": 1, "tables": 1,
    "manifests": 1, "checks": 1, "options": 1, "guard": 1, "plugins": 1, "files": 1, "lineage": 1, "library_errors": 1, "footprint": 1, "faces": 1,
    "progress": 1,
}


def _modules() -> dict[str, Path]:
    mods = {}
    for f in PACKAGE.rglob("*.py"):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def _resolve(name: str, mods: dict) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path, mods: dict) -> set[str]:
    found = set()
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for n in names:
            target = _resolve(n, mods) if n.split(".")[0] == "rtdeploy" else None
            # A package's __init__ re-exporting its own submodules is its face, not a dependency.
            if target and target != module and not (module.startswith(target + ".") and mods[target].name == "__init__.py"):
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(m, f, mods) for m, f in mods.items()}


def _floor(module: str) -> int | None:
    parts = module.split(".")
    return None if len(parts) == 1 else FLOORS.get(parts[1])


def test_every_module_has_a_floor():
    unplaced = sorted(m for m in _graph() if m != "rtdeploy" and _floor(m) is None)
    assert not unplaced, f"modules without a floor in tests/test_layers.py FLOORS: {unplaced}"


def test_no_import_points_up():
    upward = sorted(f"{a} -> {b}" for a, targets in _graph().items() for b in targets
                    if _floor(a) is not None and _floor(b) is not None and _floor(b) > _floor(a))
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycles():
    graph = _graph()
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_tensorrt_and_cuda_are_imported_only_in_rtdeploy_trt():
    offenders = []
    for f in PACKAGE.rglob("*.py"):
        if f.relative_to(PACKAGE).parts[0] == "trt":
            continue
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            offenders += [f"{f.relative_to(PACKAGE.parent)}: {n}" for n in names
                          if n.split(".")[0] in ("tensorrt", "cuda", "pycuda", "tensorrt_lean", "tensorrt_dispatch")]
    assert not offenders, offenders


def test_the_walker_sees_function_level_imports(tmp_path):
    # The test must be able to fail: a lazy upward import in a stage is found.
    mods = {"rtdeploy.precision.x": tmp_path / "x.py", "rtdeploy.api": tmp_path / "api.py"}
    (tmp_path / "x.py").write_text("def f():\n    from rtdeploy import api\n")
    assert _imports("rtdeploy.precision.x", mods["rtdeploy.precision.x"], mods) == {"rtdeploy.api"}
