"""How many times an option is written down in the package: the measure of issue 21.

    python benchmarks/option_declarations.py [--root DIR] [OPTION ...]

For each option (default: --calib-dir --batch --method --workspace --json) it counts, in the
``.py`` files under ``DIR/rtdeploy`` and in ``DIR/tests/test_api_cli_parity.py`` (which holds the
copies together), the places where it is declared by hand, read from the code's syntax tree:

- ``click``: a ``click.option(...)`` call that names the flag;
- ``cli``: a parameter of a click command's function (``rtdeploy/cli``);
- ``api``: a parameter of a function in ``rtdeploy/api.py``;
- ``parser``: a parameter of another function that turns options into a config (``make_config``);
- ``field``: an annotated attribute of a class named ``*Config`` or ``*Options``, or one declared
  with ``option(...)`` in any class (a shared option group);
- ``table``: a string that is exactly the field name or the flag, in a module-level table (an
  UPPER_CASE assignment: reuse lists, flag maps, the parity test's exception tables) or in
  ``rebuild_command``;
- ``prose``: a string that spells the flag out by hand (help texts, error messages);
- ``repack``: a keyword argument of the field's name in a call to a config class, an ``api``
  function or ``make_config`` (a value copied from one declaration into the next).

``declarations`` = click + cli + api + parser + field + table; ``prose`` and ``repack`` are what
those declarations drag along. Field names per option are below (``--json`` is ``json_out`` in the
CLI, ``json`` in bench's config; ``--batch`` has several fields).
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

FIELDS = {
    "--calib-dir": ("calib_dir",),
    "--batch": ("batch", "batches", "bench_batch"),
    "--method": ("method",),
    "--workspace": ("workspace",),
    "--json": ("json_out", "json"),
}
KINDS = ("click", "cli", "api", "parser", "field", "table", "prose", "repack")
DECLARATIONS = ("click", "cli", "api", "parser", "field", "table")
PARSERS = ("make_config",)


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    return func.id if isinstance(func, ast.Name) else ""


def _is_click_option(node: ast.Call) -> bool:
    return _name(node.func) in ("click.option", "click.Option")


def _params(fn) -> list[str]:
    a = fn.args
    return [arg.arg for arg in (*a.posonlyargs, *a.args, *a.kwonlyargs)]


def _is_command(fn) -> bool:
    return any(isinstance(d, ast.Call) and _name(d.func).endswith(("command", "handle_errors")) or
               _name(d) == "handle_errors" for d in fn.decorator_list)


def count(root: Path, flag: str, names: tuple[str, ...]) -> dict[str, int]:
    counts = dict.fromkeys(KINDS, 0)
    files = sorted((root / "rtdeploy").rglob("*.py")) + [root / "tests" / "test_api_cli_parity.py"]
    for path in files:
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        in_table: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _is_click_option(node):
                if any(isinstance(a, ast.Constant) and a.value == flag for a in node.args):
                    counts["click"] += 1
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            if any(isinstance(t, ast.Name) and t.id.isupper() for t in targets):
                in_table.update(id(sub) for sub in ast.walk(node))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "rebuild_command":
                in_table.update(id(sub) for sub in ast.walk(node))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                hits = sum(1 for p in _params(node) if p in names)
                if rel.startswith("rtdeploy/cli/") and _is_command(node):
                    counts["cli"] += hits
                elif rel == "rtdeploy/api.py" and node in tree.body:
                    counts["api"] += hits
                elif node.name in PARSERS:
                    counts["parser"] += hits
            elif isinstance(node, ast.ClassDef):
                config = node.name.endswith(("Config", "Options"))
                counts["field"] += sum(1 for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
                                       and s.target.id in names and (config or _is_option(s.value)))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if id(node) in in_table and (node.value in names or node.value == flag):
                    counts["table"] += 1
                elif _spells(node.value, flag) and not _inside_click(tree, node):
                    counts["prose"] += 1
            elif isinstance(node, ast.Call):
                callee = _name(node.func)
                if callee.endswith(("Config", "Options")) or callee.startswith("api.") or callee in PARSERS:
                    counts["repack"] += sum(1 for k in node.keywords if k.arg in names)
    return counts


def _is_option(value) -> bool:
    return isinstance(value, ast.Call) and _name(value.func) == "option"


def _inside_click(tree, target) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _is_click_option(node) and any(sub is target for sub in ast.walk(node)):
            return not any(k.arg == "help" and any(s is target for s in ast.walk(k)) for k in node.keywords)
    return False


def _spells(text: str, flag: str) -> bool:
    i = text.find(flag)
    while i >= 0:
        end = i + len(flag)
        if end == len(text) or not (text[end].isalnum() or text[end] == "-"):
            return True
        i = text.find(flag, end)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("options", nargs="*", default=list(FIELDS))
    args = parser.parse_args()
    print(f"{'option':<12} " + " ".join(f"{k:>6}" for k in KINDS) + "  declarations")
    for flag in args.options:
        c = count(args.root, flag, FIELDS.get(flag, (flag.lstrip("-").replace("-", "_"),)))
        print(f"{flag:<12} " + " ".join(f"{c[k]:>6}" for k in KINDS) + f"  {sum(c[k] for k in DECLARATIONS):>12}")


if __name__ == "__main__":
    main()
