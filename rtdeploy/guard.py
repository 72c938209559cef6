"""The output guard: no output of a command may land on anything the command reads.

One check for every command, run before any work (:meth:`rtdeploy.options.Options.check` gathers
what a command's option declarations say it reads and writes, and calls :func:`check_outputs`):

- the **outputs** are every option declared ``path=WRITES`` (``-o``, ``--json``, ``--markdown``,
  ``--trt-cache``, ``--timing-cache`` ...) plus what the command names itself
  (:meth:`~rtdeploy.options.Options.writes`: a default output, the manifest beside an artifact,
  the files a run folder receives);
- the **inputs** are every option declared ``path=READS``, the files inside an input folder
  (calibration and validation images), the manifest of every input file, and each input's
  ancestors (its manifest's parent chain) with their manifests;
- an output is refused when it **resolves onto an input** — the same path after ``..`` and
  symbolic links are resolved, or the same file through a hard link (same device and inode) —
  or onto another output of the same command, or onto an existing rtdeploy manifest or artifact it
  does not own (``import -o X.onnx.json`` over another artifact's manifest).

A file the command both reads and updates (``--timing-cache``) is declared as both and allowed
onto itself only. Every refusal is one line naming the option, the path and what it would
overwrite.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rtdeploy.errors import OutputError, opt

# Names of model files and checkpoints: a report (``--json``, ``--markdown``) named like one would
# overwrite one, now or on a later run.
MODEL_SUFFIXES = (".onnx", ".plan", ".engine", ".pth", ".pt", ".th", ".cache")
# How many files of an input folder are protected one by one (beyond, the folder as a whole is).
MAX_FOLDER_FILES = 100_000


@dataclass(frozen=True)
class Protected:
    """A path the command reads, and what it is to the user (for the message)."""

    path: Path
    what: str


def check_outputs(outputs: list[tuple[str | None, Path]], inputs: list[tuple[str | None, Path]], *,
                  updates: list[Path] = (), replaces: list[tuple[str, Path, frozenset[str]]] = (),
                  owned: list[Path] = (), writable: list[Path] = ()) -> None:
    """Refuse any output that would overwrite what the command reads (module docstring).

    Args:
        outputs: ``(option, path)`` of every file the command writes.
        inputs: ``(option, path)`` of every file or folder it reads.
        updates: paths it reads and writes back on purpose (a timing cache): allowed onto themselves.
        replaces: ``(option, folder, kept)``: folders it replaces whole, and the entries it writes again.
        owned: paths it writes as its own (the manifest beside its artifact), never "foreign".
        writable: the paths that must be writable now (the options' own; a default output is the stage's to check).

    Raises:
        OutputError: one line naming the output option, the path and what it would overwrite.
    """
    from rtdeploy.files import check_output_path

    if not outputs and not replaces:
        return
    updated = {_key(p) for p in updates}
    protected = inputs_of(inputs)
    mine = [p for _, p in outputs] + list(owned)
    seen: dict[str, tuple[str | None, Path]] = {}
    for name, out in outputs:
        flag = opt(name) if name else "the output"
        if out in writable:
            check_output_path(out)
        _check_report_name(name, out, flag)
        key = _key(out)
        if key in seen and seen[key][0] != name:
            other, first = seen[key]
            raise OutputError(f"{flag} {out} would overwrite {first}, which {opt(other) if other else 'the command'} also writes; "
                              "give each output a path of its own")
        seen.setdefault(key, (name, out))
        for p in protected:
            if key in updated and _key(p.path) == key:
                continue  # read and written back on purpose (a model adopted in place)
            if _same(out, p.path):
                raise OutputError(f"{flag} {out} would overwrite {p.what}; write the result to another path")
        _check_foreign(out, flag, mine)
    for name, folder, kept in replaces:
        lost = sorted(e.name for e in Path(folder).iterdir() if e.name not in kept) if Path(folder).is_dir() else []
        if lost:
            raise OutputError(f"{opt(name)} would replace {folder} whole, deleting {', '.join(lost[:3])}{' ...' if len(lost) > 3 else ''} "
                              "that this command does not write again; move them away first, or choose another --name")


def inputs_of(given: list[tuple[str | None, Path]]) -> list[Protected]:
    """Every path behind the inputs ``(option, path)``: the files, the files in folders, their
    manifests, and each artifact's ancestors with their manifests (nearest first)."""
    from rtdeploy.artifacts import ancestors
    from rtdeploy.files import manifest_path

    out: list[Protected] = []
    for name, path in given:
        label = f"{opt(name)} {path}" if name else str(path)
        p = Path(path)
        if p.is_dir():
            out.append(Protected(p, f"the input folder {label}"))
            out.extend(Protected(f, f"{f.name} in the input folder {label}") for f in _files_in(p))
            continue
        chain = ancestors(p) if p.exists() else [p]
        for i, a in enumerate(chain):
            out.append(Protected(a, "the input itself" if i == 0 else f"an ancestor of {p.name} (its manifest chain)"))
            out.append(Protected(manifest_path(a), f"the manifest of {a.name}"))
    return out


def _files_in(folder: Path) -> list[Path]:
    files = []
    for root, _dirs, names in os.walk(folder, followlinks=True):
        for n in names:
            files.append(Path(root) / n)
            if len(files) >= MAX_FOLDER_FILES:
                return files
    return files


def _key(p: Path) -> str:
    return os.path.realpath(p)


def _same(out: Path, protected: Path) -> bool:
    """True when writing ``out`` would replace or write through ``protected``: the same path once
    ``..`` and links are resolved, or the same file by device and inode (a hard link)."""
    if _key(out) == _key(protected):
        return True
    try:
        return os.path.samefile(out, protected)
    except OSError:  # one of them does not exist: only the path can match
        return False


def _check_report_name(name: str | None, out: Path, flag: str) -> None:
    """A report (JSON, Markdown) named like a model file, or like a model's manifest, would
    overwrite one sooner or later."""
    if name not in ("json", "markdown"):
        return
    stem = out.name.removesuffix(".json")
    if stem.lower().endswith(MODEL_SUFFIXES):
        raise OutputError(f"{flag} {out} is named like a model file or its manifest, and would overwrite one; "
                          "give the report a name of its own such as report.json")


def _check_foreign(out: Path, flag: str, mine: list[Path]) -> None:
    """Refuse an output onto an existing rtdeploy manifest the command does not write itself
    (a model written over another artifact's manifest)."""
    from rtdeploy.artifacts import MANIFEST_FORMAT

    real = Path(os.path.realpath(out))  # a link to a manifest is written through to it
    if not real.name.endswith(".json") or not real.is_file():
        return
    owner = real.with_name(real.name[: -len(".json")])
    if not owner.exists() or any(_same(owner, p) for p in mine):
        return
    try:
        import json

        data = json.loads(real.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT and "kind" in data:
        raise OutputError(f"{flag} {out} would overwrite the manifest of {owner.name}; write the result to another path")


def refuse_replacing_another_kind(output: str | os.PathLike, writes, *, option: str = "-o") -> None:
    """Refuse, before any work, an output path that holds an artifact of another kind, precision or
    INT8 target than the one the command writes (``writes``, an :class:`rtdeploy.artifacts.ArtifactKind`;
    per the manifest beside the path): replacing a TensorRT-placed INT8 model by the CPU form, an FP16
    model by an export, an engine by one of another precision loses the first with exit 0. A file
    without a readable manifest is not judged.

    Raises:
        OutputError: ``output`` holds an artifact of another kind.
    """
    from rtdeploy.artifacts import ArtifactKind, read_manifest
    from rtdeploy.errors import ArtifactError

    p = Path(output)
    if not p.is_file():
        return
    try:
        manifest = read_manifest(p, required=False)
    except ArtifactError:
        return
    if manifest is None:
        return
    have = ArtifactKind.of_manifest(manifest)
    if have != writes:
        raise OutputError(f"{option} {output} would replace {have.describe()} with {writes.describe()}; write it to another "
                          f"path, or move {p.name} and its manifest away first")
