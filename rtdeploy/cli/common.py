"""Helpers shared by the CLI commands: error handling, JSON output, progress, option types.

A command is a thin layer: parse options, build the stage's config, call one library function,
print the result. An :class:`RtDeployError` becomes one line on stderr and its exit code.

Output policy, the same for every command:

- ``--json -``: stdout carries the JSON alone; every human line goes to stderr (:func:`say`).
- ``--json FILE``: FILE is checked before any work, and written atomically (devices, FIFOs and
  ``/dev/stdout`` are written through).
- progress bars go to stderr, by default only when stderr is a terminal; ``--progress`` /
  ``--no-progress`` force them on or off.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable

import click

from rtdeploy.errors import Interrupted, RtDeployError
from rtdeploy.tables import format_table  # noqa: F401  (re-exported for the commands)

log = logging.getLogger("rtdeploy")


def handle_errors(fn: Callable) -> Callable:
    """Run a command with the shared checks and its failures as one line.

    Before the command runs: a ``json_out`` target is checked (so a bad ``--json`` fails before any
    work) and a ``progress`` of None becomes "is stderr a terminal": bars there, and otherwise (a
    pipe, a log) one line per phase of the long stages on stderr (:mod:`rtdeploy.progress`). Then an
    RtDeployError becomes ``error: <message>`` and its exit code; an interrupt (Ctrl-C, SIGTERM,
    SIGHUP) ``128 + signal``.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from rtdeploy.progress import phase_lines

        try:
            check_json_target(kwargs.get("json_out"), kwargs)
            lines = False
            if "progress" in kwargs and kwargs["progress"] is None:
                kwargs["progress"] = stderr_is_terminal()
                lines = not kwargs["progress"]
            with phase_lines(lines):
                return fn(*args, **kwargs)
        except RtDeployError as e:
            fail(e.render(flag_namer()), e.exit_code)
        except BrokenPipeError:  # files are OutputErrors by now: this is stdout, read by `head` or a closed pager
            reader_went_away()
        except OSError as e:
            # Environmental failures outside the stages' own checks (permissions, a vanished file):
            # still one line, naming the file.
            where = f" ({e.filename})" if e.filename else ""
            fail(f"{e.strerror or e}{where}; check the path and its permissions", 1)
        except KeyboardInterrupt as e:
            interrupted(e)

    return wrapper


# Config fields whose flag is not ``--`` + the field with dashes (a negative flag, another name).
FIELD_FLAGS = {"cache_dir": "--no-stats-cache", "stats_cache": "--no-stats-cache", "output": "-o", "outdir": "-o",
               "precisions": "--precision", "engines": "--no-engines", "bench": "--no-bench", "calibrate": "--no-calibrate",
               "triton": "--triton", "preferred_batch": "--preferred-batch"}


def flag_namer() -> Callable[[str], str]:
    """field -> the flag of the running command that sets it (its click option), else ``--field-name``."""
    ctx = click.get_current_context(silent=True)
    flags = {}
    for p in (ctx.command.params if ctx is not None else []):
        long = [o for o in getattr(p, "opts", []) if o.startswith("--")]
        if long:
            flags[p.name] = long[0]

    def name(field: str) -> str:
        return FIELD_FLAGS.get(field) or flags.get(field) or "--" + field.replace("_", "-")

    return name


def fail(message: str, exit_code: int) -> None:
    """Print ``error: <message>`` as one line on stderr and exit with ``exit_code``."""
    with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
        click.echo(f"error: {' '.join(str(message).split())}", err=True)
    sys.exit(exit_code)


def reader_went_away() -> None:
    """Stop quietly with exit 128 + SIGPIPE, as a shell tool does, when stdout's reader has gone
    (``rtdeploy doctor | head -1``): there is no one to tell, and no error to report."""
    with contextlib.suppress(OSError, ValueError):  # stdout points at /dev/null from here, so the exit flush cannot fail
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(128 + signal.SIGPIPE)


def interrupted(e: BaseException) -> None:
    """The one line and exit status (128 + signal) of an interrupt; partial files are already gone.

    (Under ``rtdeploy`` itself the signal handler has already set further signals to be ignored, so a
    second Ctrl-C cannot break this exit; in-process callers keep their own handlers.)
    """
    signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
    name = e.signal_name if isinstance(e, Interrupted) else "SIGINT"
    fail(f"interrupted ({name}); no partial output was kept", 128 + signum)


INTERRUPT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def install_signal_handlers() -> None:
    """Make SIGINT, SIGTERM and SIGHUP alike: each unwinds as :class:`Interrupted` (so partial files
    are removed on the way out); any further one is ignored while that happens."""

    def on_signal(signum, frame):
        ignore_interrupts()
        raise Interrupted(signum)

    for s in INTERRUPT_SIGNALS:
        signal.signal(s, on_signal)


def ignore_interrupts() -> None:
    """Ignore further SIGINT/SIGTERM/SIGHUP (main thread only; elsewhere nothing to do)."""
    with contextlib.suppress(ValueError):  # not the main thread
        for s in INTERRUPT_SIGNALS:
            signal.signal(s, signal.SIG_IGN)


# Suffixes of the files the commands read and write besides JSON: a --json FILE (or a manifest path
# FILE.json beside one) of these names would overwrite a model, an engine or a checkpoint.
MODEL_SUFFIXES = (".onnx", ".plan", ".engine", ".pth", ".pt", ".th", ".cache")


def check_json_target(target: str | None, params: dict | None = None) -> None:
    """Check a ``--json FILE`` target before any work ('-' is stdout).

    FILE must be writable, must not be named like a model file or its manifest, and must not be a
    path the command reads or writes (any path option in ``params``, or that path's manifest).

    Raises:
        OutputError: see :func:`rtdeploy.artifacts.check_output_path`, or the rules above.
    """
    if target is None or target == "-":
        return
    from rtdeploy.artifacts import check_output_path, manifest_path
    from rtdeploy.errors import OutputError

    p = check_output_path(Path(target))
    stem = p.name.removesuffix(".json")
    if stem.lower().endswith(MODEL_SUFFIXES):
        raise OutputError(f"--json {target} is named like a model file or its manifest, and would overwrite one; "
                          "give the JSON a name of its own such as report.json")
    for value in (params or {}).values():
        if isinstance(value, Path) and p.resolve() in (value.resolve(), manifest_path(value).resolve()):
            raise OutputError(f"--json {target} would overwrite {value} (or its manifest), which this command reads or writes; "
                              "give the JSON a path of its own such as report.json")


def emit_json(data: Any, target: str | None) -> None:
    """Write ``data`` as JSON to ``target`` (a path, or ``-`` for stdout) atomically."""
    if target is None:
        return
    if target == "-":
        click.echo(json.dumps(data, indent=2, default=str))
        return
    from rtdeploy.artifacts import write_json_atomic

    write_json_atomic(Path(target), data)


def say(message: str, json_out: str | None = None) -> None:
    """A human line: on stdout, or on stderr when stdout carries the JSON (``--json -``)."""
    click.echo(message, err=json_out == "-")


def stderr_is_terminal() -> bool:
    """True when stderr is a terminal (progress bars are shown there by default)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def progress_option() -> Callable:
    """``--progress/--no-progress``: bars on stderr; by default bars when stderr is a terminal and a
    line per phase otherwise."""
    return click.option("--progress/--no-progress", default=None,
                        help="Progress bars on stderr; --no-progress: nothing  [default: bars when stderr is a terminal, "
                             "else a line per phase].")


def json_option(what: str = "the report") -> Callable:
    """``--json FILE``: also write ``what`` as JSON to FILE, or to stdout alone with ``-``."""
    return click.option("--json", "json_out", metavar="FILE",
                        help=f"Also write {what} as JSON to FILE ('-': stdout carries the JSON alone, other lines go to stderr).")


def depth_option(**kwargs) -> Callable:
    """``--depth N``: the ResNet depth, validated by the registry (the error lists valid depths)."""
    from rtdeploy.models.registry import valid_depths_text

    kwargs.setdefault("default", 50)
    kwargs.setdefault("show_default", True)
    return click.option("--depth", type=int, help=f"ResNet depth: {valid_depths_text()}.", **kwargs)


def model_option(**kwargs) -> Callable:
    """``--model NAME`` (``resnet50``), with ``--depth N`` as its short alias (``resnetN``).

    Both spell one option, so the command receives one ``model`` value: a name, or the depth as
    text; the registry checks it (an unknown one lists the valid names).
    """
    from rtdeploy.models.specs import valid_names_text

    default = kwargs.pop("default_text", "resnet50")
    return click.option("--model", "--depth", "model", default=None, metavar="NAME|N",
                        help=f"Model by name ({valid_names_text()}), or --depth N for resnetN "
                             f"[default: {default}].", **kwargs)


def passive_thread_waits() -> None:
    """Let PyTorch's OpenMP threads sleep, not spin, between parallel regions (unless the user set
    ``OMP_WAIT_POLICY``): for the long PyTorch passes of validate and run. On this project's two
    shared cores a ResNet-56 pass with spinning threads ran 5-9x slower than with sleeping ones
    while other work ran (docs/validation.md). Takes effect only before torch first runs in the
    process; the benchmark commands keep the default, to time what users get."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def setup_logging(verbose: int) -> None:
    """Log to stderr: warnings by default, info with -v, debug with -vv."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
