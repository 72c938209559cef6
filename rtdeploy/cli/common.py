"""Helpers shared by the CLI commands: error handling, JSON output, option types.

A command is a thin layer: parse options, build the stage's config, call one library function,
print the result. An :class:`RtDeployError` becomes one line on stderr and its exit code.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable

import click

from rtdeploy.errors import RtDeployError
from rtdeploy.tables import format_table  # noqa: F401  (re-exported for the commands)

log = logging.getLogger("rtdeploy")


def handle_errors(fn: Callable) -> Callable:
    """Turn RtDeployError into ``error: <message>`` and a non-zero exit; Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RtDeployError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)
        except OSError as e:
            # Environmental failures outside the stages' own checks (permissions, a vanished file):
            # still one line, naming the file.
            where = f" ({e.filename})" if e.filename else ""
            click.echo(f"error: {e.strerror or e}{where}; check the path and its permissions", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("error: interrupted; no partial output was kept", err=True)
            sys.exit(130)

    return wrapper


def emit_json(data: Any, target: str | None) -> None:
    """Write ``data`` as JSON to ``target`` (a path, or ``-`` for stdout) atomically."""
    if target is None:
        return
    if target == "-":
        click.echo(json.dumps(data, indent=2, default=str))
        return
    from rtdeploy.artifacts import write_json_atomic

    write_json_atomic(Path(target), data)


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


def setup_logging(verbose: int) -> None:
    """Log to stderr: warnings by default, info with -v, debug with -vv."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
