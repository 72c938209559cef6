"""The command line, made from the config classes: one click option per declared field.

A command module writes only what is its own: the docstring (its ``--help``), and how the result
is shown. Its options come from the fields of its config (:mod:`rtdeploy.options`), so a flag, its
help, type, choices and default are written once, in the stage that uses them, and the API takes
the same names::

    @command("quantize", QuantizeConfig)
    def quantize(**options):
        \"\"\"Make an INT8 or FP16 ONNX ...\"\"\"
        result = api.quantize(**options)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from rtdeploy.options import CHOICE_FLAGS, FLAG, KEYED, MULTIPLE, NEGATIVE, VALUE, Option, declared

# A FLAG whose command-line default is TERMINAL is on when stderr is a terminal (progress bars).
TERMINAL = "terminal"


def command(name: str, config: type, *, context_settings: dict | None = None) -> Callable[[Callable], click.Command]:
    """A click command named ``name`` whose options are ``config``'s declared fields.

    The decorated function receives every field by name (after the CLI-only folds: one value for
    ``--fp32/--fp16/--int8``, one dict for keyed options, a terminal check for ``--progress``),
    runs inside :func:`rtdeploy.cli.common.handle_errors`, and its docstring is the help. Where
    ``--progress`` is left to the terminal check and stderr is not a terminal (a pipe, a log), the
    long stages print a line per phase on stderr instead of bars (:mod:`rtdeploy.progress`).
    """
    from rtdeploy.cli.common import handle_errors
    from rtdeploy.progress import phase_lines

    def decorate(fn: Callable) -> click.Command:
        fields = [(f, o) for f, o in declared(config) if o.cli]

        @functools.wraps(fn)
        def callback(**raw: Any) -> Any:
            left_to_terminal = [f.name for f, o in fields if o.cli_default == TERMINAL and raw.get(f.name) is None]
            options = fold(fields, raw)
            with phase_lines(any(not options[name] for name in left_to_terminal)):
                return fn(**options)

        own = frozenset(config.__dict__.get("__annotations__", {}))
        cmd = click.Command(name, callback=handle_errors(callback), params=params(fields, own), help=fn.__doc__,
                            context_settings=context_settings)
        cmd.config_class = config  # error messages name fields by this class's flags
        return cmd

    return decorate


def params(fields: list, own: frozenset[str] = frozenset()) -> list[click.Parameter]:
    """The click parameters of the declared fields: arguments first, then the command's own
    options, then those of its shared groups (in field order)."""
    arguments = [_argument(f, o) for f, o in fields if o.argument]
    ordered = sorted((fo for fo in fields if not fo[1].argument), key=lambda fo: fo[0].name not in own)
    return arguments + [p for f, o in ordered for p in _options(f, o)]


def _click_type(o: Option) -> Any:
    choices = o.choice_list()
    if choices is not None:
        return click.Choice(list(choices))
    if o.type is Path:
        return click.Path(path_type=Path)
    return o.type


def _argument(f, o: Option) -> click.Argument:
    return click.Argument([f.name], type=_click_type(o), metavar=o.metavar)


def _default(f, o: Option) -> tuple[Any, bool]:
    """The click default and whether the option is required."""
    import dataclasses

    from rtdeploy.options import default_of

    if o.cli_default is not None:
        return (None if o.cli_default == TERMINAL else o.cli_default), False
    default = default_of(f)
    if default is dataclasses.MISSING:
        return None, True
    if o.kind in (VALUE, FLAG) and not isinstance(default, (str, int, float, Path)):
        return None, False  # no text form (an empty tuple, a folder computed at run time): the config's default applies
    return default, False


def _options(f, o: Option) -> list[click.Option]:
    default, required = _default(f, o)
    common = {"help": o.help_text(), "show_default": o.show_default and default not in (None, False, ())}
    if o.kind == FLAG:
        decl = f"{o.flags[0]}/{o.flags[1]}" if len(o.flags) == 2 else o.flags[0]
        return [click.Option([decl, f.name], is_flag=True, default=default, **common)]
    if o.kind == NEGATIVE:
        return [click.Option([*o.flags, f.name], is_flag=True, flag_value=False, default=True, help=o.help_text())]
    if o.kind == CHOICE_FLAGS:
        return [click.Option([flag, f"{f.name}__{choice}"], is_flag=True, help=help_)
                for flag, choice, help_ in zip(o.flags, o.choice_list(), o.help_text().split("|"))]
    if o.kind == KEYED:
        return [click.Option([flag, f"{f.name}__{key}"], type=o.type, help=help_) for key, (flag, help_) in o.keys.items()]
    extra: dict[str, Any] = {}
    if o.kind == MULTIPLE:
        extra["multiple"] = True
    if o.flag_value is not None:
        extra.update(is_flag=False, flag_value=o.flag_value)
    if default is not None:  # click takes an explicit None for a default, and then never asks for a required option
        extra["default"] = default
    return [click.Option([*o.flags, f.name], type=_click_type(o), required=required, metavar=o.metavar, **common, **extra)]


def fold(fields: list, raw: dict[str, Any]) -> dict[str, Any]:
    """The command line's values as config fields: one value per field."""
    from rtdeploy.cli.common import stderr_is_terminal
    from rtdeploy.errors import UsageError

    out: dict[str, Any] = {}
    for f, o in fields:
        if o.kind == CHOICE_FLAGS:
            chosen = [c for c in o.choice_list() if raw.pop(f"{f.name}__{c}", False)]
            if len(chosen) > 1:
                # several flags, not one flag_value option: click keeps only the last of those, so
                # `--fp16 --int8` would otherwise pass as INT8
                flags = dict(zip(o.choice_list(), o.flags))
                raise UsageError(f"give one of {', '.join(o.flags[:-1])} or {o.flags[-1]}, not {' and '.join(flags[c] for c in chosen)}")
            if chosen:
                out[f.name] = chosen[0]
        elif o.kind == KEYED:
            values = {k: raw.pop(f"{f.name}__{k}", None) for k in o.keys}
            out[f.name] = {k: v for k, v in values.items() if v is not None}
        elif f.name in raw:
            value = raw.pop(f.name)
            if value is None and o.cli_default == TERMINAL:
                value = stderr_is_terminal()
            if value is None:
                continue  # left unset on the command line: the config's default applies
            if o.kind == MULTIPLE:
                value = tuple(value)
            out[f.name] = value
    return out
