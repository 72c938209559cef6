"""Derive the Python API surface of a TensorRT release that has no importable bindings here (8.5.3)
from NVIDIA's own binding sources, as "the real 8.6.1 bindings minus what 8.5.3's sources lack".

    python tests/trt_stubs/derive_surface.py /path/to/NVIDIA/TensorRT/git > tests/trt_stubs/surface-8.5.3.json

NVIDIA/TensorRT's ``python/src/**/*.cpp`` declare every Python name with pybind11:
``py::class_<T>(scope, "Name" ...)``, ``py::enum_<T>(scope, "Name" ...)`` and, chained on them or on a
variable holding them, ``.def("name"``, ``.def_property("name"``, ``.def_readwrite("name"``, ``.value("NAME"``;
module functions are ``m.def("name"``. The same reader runs on the tag of the bindings we import
(v8.6.1) and on the older tag (8.5.3); a name is hidden when v8.6.1's sources declare it and 8.5.3's do
not. Names the reader cannot attribute (pybind11's own ``name``/``value``, Python helpers in
``tensorrt/__init__.py``) are never hidden, so the derived surface can only be too generous, never
remove something 8.5.3 has. Only names are derived: signatures are the 8.6.1 ones.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

BASE_TAG, OLD_TAG = "v8.6.1", "8.5.3"
_HEAD = re.compile(r'py::(class_|enum_)<[^;{(]*?>\s*(\w+)?\s*[({]\s*(\w+)\s*,\s*"(\w+)"', re.S)
_MEMBER = re.compile(r'\.(def|def_property|def_property_readonly|def_readwrite|def_readonly|def_static|value)\(\s*"(\w+)"')


def _statements(text: str) -> list[str]:
    """Top-level statements: split at ``;`` outside parentheses, braces of lambdas, strings and comments."""
    text = re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))
    out, cur, depth, i = [], [], 0, 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < len(text) and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            cur.append(text[i:j + 1])
            i = j + 1
            continue
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == ";" and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    return out


def declared(sources: dict[str, str]) -> dict[str, set[str]]:
    """``{scope: names}``: scope ``""`` is the module; a class or enum name holds its members/values."""
    found: dict[str, set[str]] = {"": set()}
    variables: dict[str, str] = {}
    for text in sources.values():
        for stmt in _statements(text):
            head = _HEAD.search(stmt)
            owner = None
            if head:
                _, var, _scope, name = head.groups()
                found[""].add(name)
                owner = name
                if var:
                    variables[var] = name
                rest = stmt[head.end():]
            else:
                m = re.match(r"\s*(\w+)\s*\.", stmt)
                if not m:
                    continue
                owner = "" if m.group(1) == "m" else variables.get(m.group(1))
                if owner is None:
                    continue
                rest = stmt[m.start(1):]
            for _kind, member in _MEMBER.findall(rest):
                found.setdefault(owner, set()).add(member)
    return found


def read_tag(repo: Path, tag: str) -> dict[str, str]:
    files = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "--name-only", tag, "python/src"], capture_output=True,
                           text=True, check=True).stdout.split()
    return {f: subprocess.run(["git", "-C", str(repo), "show", f"{tag}:{f}"], capture_output=True, text=True, check=True).stdout
            for f in files if f.endswith(".cpp")}


def hidden_members(base: dict[str, set[str]], old: dict[str, set[str]], real: dict) -> dict:
    """What the real bindings (``real``: the reference JSON of v8.6.1) have and ``old``'s sources lack."""
    module = sorted(n for n in real["module"] if n in base[""] and n not in old[""])
    gone = set(module)
    scopes = {**real["classes"], **real["enums"]}
    members = {}
    for scope, names in sorted(scopes.items()):
        if scope in gone:
            continue
        lost = sorted(n for n in names if n in base.get(scope, set()) and n not in old.get(scope, set()))
        if lost:
            members[scope] = lost
    return {"module": module, "members": members}


def main(argv: list[str]) -> int:
    repo = Path(argv[0])
    real = json.loads((Path(__file__).resolve().parents[3] / "shared" / "reference" / "tensorrt-api" / "trt-8.6.1.json").read_text())
    base, old = declared(read_tag(repo, BASE_TAG)), declared(read_tag(repo, OLD_TAG))
    unattributed = sorted(n for n in real["module"] if n not in base[""])
    commit = subprocess.run(["git", "-C", str(repo), "rev-list", "-n1", OLD_TAG], capture_output=True, text=True).stdout.strip()
    record = {
        "release": "8.5.3", "base": "8.6.1",
        "source": {"repository": "https://github.com/NVIDIA/TensorRT", "old_tag": OLD_TAG, "old_commit": commit, "base_tag": BASE_TAG,
                   "files": "python/src/**/*.cpp (pybind11 declarations)",
                   "method": "tests/trt_stubs/derive_surface.py: names declared at base_tag and not at old_tag are hidden"},
        "never_hidden": unattributed,
        "hidden": hidden_members(base, old, real),
    }
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
