"""One declaration per option: a config field says everything about the option that sets it.

A command's options are the fields of its config dataclass (a subclass of :class:`Options`). Each
field is declared with :func:`option`, whose :class:`Option` metadata holds the flag(s), the help,
the parser, the choices (a registry's names, read when the command line is built), the default,
whether the value changes the output (the reuse record), whether it is a path the command reads
or writes (the output guard), and in which modes it applies (the mode rule). From that one place:

- the command line: :mod:`rtdeploy.cli.generate` makes the click options of every command;
- the Python API: :mod:`rtdeploy.api` takes the same fields, with the same defaults;
- error messages name a field with :func:`rtdeploy.errors.opt`, rendered as the flag on the
  command line (:func:`flag_of`);
- reuse records (:func:`output_fields`), ``rebuild_command`` (:func:`command_line`), the output
  guard (:func:`paths`) and the mode rule (:func:`check_modes`).

Option groups shared by several commands (calibration, TensorRT build, JSON report, progress) are
dataclass mixins: a command's config inherits the groups it takes, so their fields are declared once.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rtdeploy.errors import RtDeployError, opt

# What kind of command-line switch a field is.
VALUE, FLAG, NEGATIVE, CHOICE_FLAGS, KEYED, MULTIPLE = "value", "flag", "negative", "choice-flags", "keyed", "multiple"
# Paths an option names: read by the command (its content, its manifest and ancestors are protected
# from every output) or written by it.
READS, WRITES = "reads", "writes"


@dataclass(frozen=True)
class When:
    """A mode in which an option applies: ``field``'s value passes ``test``.

    Attributes:
        field: the option that decides the mode, or a property of the config that several options
            decide (``calibrates``); a command without that field is never in another mode.
        test: ``value -> bool``; a constant compares equal, a tuple means "one of".
        says: how a message names the mode (default: the field's flag and the value it needs).
        message: the refusal (default ``"{given} does nothing with {decider}; drop {option}"``); see
            :func:`mode_error` for the names it may use.
        error: the error class (default: the config's :attr:`Options.error`).
    """

    field: str
    test: Any
    says: str | None = None
    message: str | None = None
    error: type[RtDeployError] | None = None

    def holds(self, cfg: Any) -> bool:
        if not hasattr(cfg, self.field):  # a group's rule about a field this command does not have
            return True
        value = getattr(cfg, self.field)
        if callable(self.test):
            return bool(self.test(value))
        if isinstance(self.test, tuple):
            return value in self.test
        return value == self.test

    def mode(self, cfg: Any) -> str:
        if self.says is not None:
            return self.says
        o = option_of(type(cfg), self.field)
        if o.kind in (FLAG, NEGATIVE) or self.test in (True, False):
            return opt(self.field)
        return f"{opt(self.field)} {self.test}"


@dataclass(frozen=True)
class Option:
    """What one config field's option is (see the module docstring).

    Attributes:
        flags: the command-line flags (``("-o", "--output")``); the first long one names it.
        help: one line for ``--help`` and the API's docstring.
        type: the value's type on the command line (``str``, ``int``, ``float``, ``Path``).
        parse: ``value -> typed value``, run when the config is made (from the CLI's text or an
            API value alike); raises an RtDeployError naming the option.
        choices: the accepted values, or a function returning them (a registry's names).
        metavar: the placeholder in ``--help``.
        kind: VALUE, FLAG (``--x``), NEGATIVE (``--no-x`` sets False), CHOICE_FLAGS (one flag per
            choice: ``--fp32/--fp16/--int8``), KEYED (several flags fold into one dict), MULTIPLE
            (repeatable).
        keys: for KEYED: key -> (flag, help).
        flag_value: for a VALUE option whose flag may come alone (``--force`` = ``--force all``).
        changes_output: False for options that do not change what is written (where, how shown):
            they are left out of the reuse record.
        path: READS or WRITES when the value is a path (the output guard's inputs and outputs).
        cli: False for API-only fields (a callback, the command line of a bench report).
        cli_default: the command line's default when it differs from the API's (text the parser
            reads, as ``--help`` shows it; ``"terminal"`` for a flag that is on when stderr is a terminal).
        show_default: show the default in ``--help``.
        applies: the modes in which the option applies; given in any other mode it is refused.
        argument: a positional command-line argument rather than an option.
    """

    flags: tuple[str, ...] = ()
    help: str | Callable[[], str] = ""
    type: Any = str
    parse: Callable[[Any], Any] | None = None
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None
    metavar: str | None = None
    kind: str = VALUE
    keys: dict[str, tuple[str, str]] | None = None
    flag_value: Any = None
    changes_output: bool = True
    path: str | None = None
    cli: bool = True
    cli_default: Any = None
    show_default: bool = True
    applies: tuple[When, ...] = ()
    argument: bool = False

    def help_text(self) -> str:
        """The help (a registry's names are read at each call)."""
        return self.help() if callable(self.help) else self.help

    def choice_list(self) -> tuple[str, ...] | None:
        """The accepted values now (a registry's names are read at each call)."""
        return self.choices() if callable(self.choices) else self.choices

    @property
    def flag(self) -> str:
        """The flag that names the option in messages: its first."""
        return self.flags[0] if self.flags else ""


def option(default: Any = dataclasses.MISSING, *flags: str, factory: Callable[[], Any] | None = None, **meta: Any) -> Any:
    """A config field declared with its option (see :class:`Option` for ``meta``)."""
    flags = tuple(meta.pop("flags", ())) + flags
    kw: dict[str, Any] = {"metadata": {"option": Option(flags=flags, **meta)}}
    if factory is not None:
        kw["default_factory"] = factory
    elif default is not dataclasses.MISSING:
        kw["default"] = default
    return dataclasses.field(**kw)


@dataclass(frozen=True, kw_only=True)
class Options:
    """Base of every command's config: its fields are its options (see the module docstring).

    Making a config parses every field with its option's parser, so a config holds typed values
    whether it came from the command line or the API; :meth:`check` then applies the rules that
    need several fields, the mode rule and the output guard, before any work.

    Attributes:
        error: the class of the command's refusals (its exit status: 1, or 2 for usage errors).
    """

    error: ClassVar[type[RtDeployError]] = RtDeployError

    def __post_init__(self) -> None:
        for f, o in declared(type(self)):
            value = getattr(self, f.name)
            if o.parse is not None and value is not None:
                object.__setattr__(self, f.name, o.parse(value))

    def check(self) -> None:
        """Every rule on the options, before any work: the command's own rules (:meth:`rules`),
        the mode rule, what the inputs must be (:meth:`check_inputs`), then the output guard.

        Raises:
            RtDeployError: the first broken rule (one line naming the options).
        """
        self.rules()
        check_modes(self)
        self.check_inputs()
        guard(self)

    def rules(self) -> None:
        """The command's rules that relate several options (override; the default has none)."""

    def explain(self, name: str) -> str:
        """Which options make the property ``name`` (a mode several options decide) what it is, for
        a refusal (override)."""
        return f"with these options ({name} is {getattr(self, name)})"

    def check_inputs(self) -> None:
        """The checks of the inputs that are cheap and would otherwise come only minutes in (override)."""

    def reads(self) -> list[Path]:
        """Paths the command reads besides its READS options (override: e.g. a default input)."""
        return []

    def writes(self) -> list[tuple[str, Path]]:
        """``(option, path)`` the command writes besides its WRITES options (override: the
        default output path, the manifest beside an artifact, files a stage names itself)."""
        return []

    def updates(self) -> list[Path]:
        """Paths the command reads and writes back on purpose (a timing cache, a model adopted in
        place): the guard lets an output onto these (override)."""
        return []

    def replaces(self) -> list[tuple[str, Path, frozenset[str]]]:
        """``(option, folder, kept)``: folders the command replaces whole, and the entries of each
        it writes again; anything else in them would be lost (override)."""
        return []


def guard(cfg: Options) -> None:
    """The output guard (:mod:`rtdeploy.guard`) on what ``cfg``'s declarations say it reads and writes.

    Raises:
        OutputError: an output would overwrite an input, another output, or an artifact's manifest.
    """
    from rtdeploy.guard import check_outputs

    outputs = [*paths(cfg, WRITES), *cfg.writes()]
    inputs = [*paths(cfg, READS), *((None, p) for p in cfg.reads())]
    check_outputs(outputs, inputs, updates=cfg.updates(), replaces=cfg.replaces(), writable=[p for _, p in paths(cfg, WRITES)])


def declared(cls: type) -> Iterator[tuple[dataclasses.Field, Option]]:
    """The fields of a config class that are options, in declaration order."""
    for f in dataclasses.fields(cls):
        o = f.metadata.get("option")
        if o is not None:
            yield f, o


def option_of(cls: type, name: str) -> Option:
    """The :class:`Option` of field ``name`` of ``cls`` (an undeclared field gets a plain one)."""
    for f, o in declared(cls):
        if f.name == name:
            return o
    return Option(flags=("--" + name.replace("_", "-"),))


def flag_of(cls: type | None, name: str) -> str:
    """How the command line names field ``name``: its option's flag (a NEGATIVE option's
    ``--no-x``), else ``--name-with-dashes``."""
    if cls is not None:
        for f, o in declared(cls):
            if f.name == name and o.flags:
                return o.flag
            if o.kind == KEYED and name in (o.keys or {}):
                return o.keys[name][0]
    return "--" + name.replace("_", "-")


def default_of(f: dataclasses.Field) -> Any:
    """A field's default (its factory's value), or MISSING."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def given(cfg: Options) -> dict[str, Any]:
    """The options of ``cfg`` set to something other than their default, by field."""
    out = {}
    for f, o in declared(type(cfg)):
        value, default = getattr(cfg, f.name), default_of(f)
        if default is dataclasses.MISSING:
            continue
        if o.parse is not None and default is not None:
            try:
                default = o.parse(default)
            except RtDeployError:
                pass
        if value != default:
            out[f.name] = value
    return out


def output_fields(cfg: Options, *, exclude: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """The fields whose value changes the output (the reuse record's config), by name."""
    return {f.name: getattr(cfg, f.name) for f, o in declared(type(cfg)) if o.changes_output and f.name not in exclude}


def check_modes(cfg: Options) -> None:
    """The mode rule: an option given where it would be ignored is refused, naming both.

    Each option declares (``applies``) the modes in which it does something; given in another
    mode (by another option or by the input's kind) it would change nothing, so it is refused in
    one line that names the option and the option that decides the mode.

    Raises:
        RtDeployError: the config's error class (or the rule's), naming both options.
    """
    values = given(cfg)
    for f, o in declared(type(cfg)):
        if not o.applies or f.name not in values:
            continue
        for when in o.applies:
            if not when.holds(cfg):
                raise mode_error(cfg, f.name, when)


def mode_error(cfg: Options, name: str, when: When) -> RtDeployError:
    """The refusal of option ``name``, which ``when`` says does not apply in ``cfg``'s mode.

    The message template (``when.message``, default ``"{given} does nothing with {decider}; drop
    {option}"``) may use: ``{option}`` (the refused option's flag), ``{given}`` (its flag and value),
    ``{value}``, ``{mode}`` (the mode it needs) and ``{decider}`` (the option that decides the mode,
    with its value).
    """
    template = when.message or "{given} does nothing with {decider}; drop {option}"
    value = getattr(cfg, name)
    o = option_of(type(cfg), name)
    shown = opt(name) if o.kind in (FLAG, NEGATIVE) or isinstance(value, bool) else f"{opt(name)} {_show(value)}"
    decider = state(cfg, when.field, getattr(cfg, when.field))
    error = when.error or type(cfg).error
    fields = {"option": opt(name), "given": shown, "value": _show(value), "mode": when.mode(cfg), "decider": decider}
    for key, text in fields.items():  # not str.format: the template holds {opt:field} names too
        template = template.replace("{" + key + "}", text)
    return error(template)


def state(cfg: Options, name: str, value: Any) -> str:
    """How a message names field ``name`` holding ``value``: ``--no-bench``, ``--onnx m.onnx``,
    ``without --onnx``."""
    if name not in {f.name for f, _ in declared(type(cfg))}:  # a property that several options decide
        return cfg.explain(name)
    o = option_of(type(cfg), name)
    if o.kind == NEGATIVE:
        return opt(name) if not value else f"without {opt(name)}"
    if o.kind == FLAG or isinstance(value, bool):
        return opt(name) if value else f"without {opt(name)}"
    if value is None or value == () or value == {}:
        return f"without {opt(name)}"
    return f"{opt(name)} {_show(value)}"


def _show(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def paths(cfg: Options, role: str) -> list[tuple[str, Path]]:
    """``(field, path)`` of every option of ``cfg`` in ``role`` (READS or WRITES) that is set."""
    out = []
    for f, o in declared(type(cfg)):
        value = getattr(cfg, f.name)
        if o.path != role or value is None or value == "-" or isinstance(value, bool):
            continue
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(v, (str, os.PathLike)) and str(v) not in ("", "-"):
                out.append((f.name, Path(v)))
    return out


def command_line(cfg: Options, *, skip: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """The flags that give ``cfg``'s non-default options on the command line (for a manifest's
    ``rebuild_command``), in declaration order."""
    words: list[str] = []
    values = given(cfg)
    for f, o in declared(type(cfg)):
        if f.name in skip or f.name not in values or not o.cli or o.argument:
            continue
        value = values[f.name]
        if o.kind == FLAG:
            words += [o.flag] if value else []
        elif o.kind == NEGATIVE:
            words += [o.flag] if not value else []
        elif o.kind == CHOICE_FLAGS:
            words += [dict(zip(o.choice_list() or (), o.flags)).get(value, f"{o.flag} {value}")]
        elif o.kind == KEYED:
            words += [w for k, v in (value or {}).items() if v is not None for w in (o.keys[k][0], str(v))]
        else:
            words += [o.flag, _show(value)]
    return words


# --- option groups every command shares ----------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class JsonReport:
    """``--json FILE``: also write the command's result as JSON (``-``: stdout carries it alone)."""

    json: str | None = option(None, "--json", metavar="FILE", path=WRITES, changes_output=False, flag_value="-",
                              help="Also write the result as JSON to FILE ('-' or no FILE: stdout carries the JSON alone, other "
                                   "lines go to stderr).")


@dataclass(frozen=True, kw_only=True)
class Progress:
    """``--progress/--no-progress``: bars on stderr."""

    progress: bool = option(False, "--progress", "--no-progress", kind=FLAG, cli_default="terminal", changes_output=False,
                            help="Progress bars on stderr; --no-progress: nothing  [default: bars when stderr is a terminal, "
                                 "else a line per phase].")
