"""Helpers shared by the CLI commands: error handling, JSON output, progress, option types.

A command is a thin layer: parse options, build the stage's config, call one library function,
print the result. An :class:`RtDeployError` becomes one line on stderr and its exit code.

Output policy, the same for every command:

- ``--json -``: stdout carries the JSON alone; every human line goes to stderr (:func:`say`).
- ``--json FILE``: FILE is checked before any work (the output guard), and written atomically
  after the human lines (devices, FIFOs and ``/dev/stdout`` are written through).
- progress goes to stderr: bars by default when stderr is a terminal, otherwise (a pipe, a log)
  one line per phase of the long stages (:mod:`rtdeploy.progress`); ``--progress`` /
  ``--no-progress`` force bars on or everything off.

The options themselves are declared once, in each command's config (:mod:`rtdeploy.cli.generate`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
from typing import Callable

import click

from rtdeploy.cli.signals import interruption
from rtdeploy.errors import RtDeployError

log = logging.getLogger("rtdeploy")


def handle_errors(fn: Callable) -> Callable:
    """Run a command with its failures as one line: an RtDeployError becomes ``error: <message>``
    (options named by the command's flags) and its exit code; an interrupt (Ctrl-C, SIGTERM,
    SIGHUP) ``128 + signal``."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
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


def flag_namer() -> Callable[[str], str]:
    """field -> the flag that sets it on the running command (from its config's declarations)."""
    from rtdeploy.options import flag_of

    ctx = click.get_current_context(silent=True)
    config = getattr(ctx.command, "config_class", None) if ctx is not None else None
    return lambda field: flag_of(config, field)


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

    (Under ``rtdeploy`` itself the signal policy has already set further signals to be ignored, so a
    second Ctrl-C cannot break this exit; in-process callers keep their own handlers.)
    """
    fail(*interruption(e))


def say(message: str, json_out: str | None = None) -> None:
    """A human line: on stdout, or on stderr when stdout carries the JSON (``--json -``)."""
    click.echo(message, err=json_out == "-")


def stderr_is_terminal() -> bool:
    """True when stderr is a terminal (progress bars are shown there by default)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


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
