"""The command line and the API are made from one declaration per option (rtdeploy.options).

What the generation cannot promise by construction is tested here: every command is paired with
an api function over the same config class; what the command line parses by default is what the
API defaults to; choices come from the registries; and a message names a field in the API and the
command's flag on the command line.
"""

from __future__ import annotations

import dataclasses
import inspect

import click
import pytest

from rtdeploy import api
from rtdeploy.cli.main import _register, cli
from rtdeploy.options import KEYED, declared, default_of


def _commands():
    _register()
    return sorted(cli.commands.items())


@pytest.mark.parametrize("name,command", _commands(), ids=[n for n, _ in _commands()])
def test_command_and_api_function_take_one_config(name, command):
    fn = getattr(api, {"import": "import_model"}.get(name, name.replace("-", "_")))
    config = command.config_class
    assert fn.config_class is config, f"`rtdeploy {name}` and api.{fn.__name__} are made from different configs"
    fields = {f.name for f, o in declared(config)}
    params = set(inspect.signature(fn).parameters) - {"show", "on_stage"}
    assert params == fields, f"api.{fn.__name__} takes {sorted(params ^ fields)} unlike {config.__name__}"
    # every CLI option sets one field (a keyed option one key of it), and every CLI field has an option
    on_cli = {p.name.split("__")[0] for p in command.params if p.name != "help"}
    assert on_cli == {f.name for f, o in declared(config) if o.cli}


@pytest.mark.parametrize("name,command", _commands(), ids=[n for n, _ in _commands()])
def test_command_line_defaults_parse_to_the_api_defaults(name, command):
    config = command.config_class
    by_name = {f.name: (f, o) for f, o in declared(config)}
    for p in command.params:
        field_name = p.name.split("__")[0]
        if field_name not in by_name or p.default is None or type(p.default).__name__ == "Sentinel" or isinstance(p, click.Argument):
            continue
        f, o = by_name[field_name]
        if o.kind == KEYED or getattr(p, "is_flag", False) and p.name != f.name:
            continue
        expected = default_of(f)
        parsed = o.parse(p.default) if o.parse is not None and p.default is not None else p.default
        if o.parse is not None and expected is not None and expected is not dataclasses.MISSING:
            expected = o.parse(expected)
        if isinstance(parsed, (list, tuple)) and not isinstance(expected, (list, tuple)):
            parsed = type(expected)(parsed) if expected is not None else parsed
        assert parsed == expected or str(parsed) == str(expected), f"{name} {p.name}: CLI {p.default!r} -> {parsed!r}, API {expected!r}"


def test_method_choices_are_the_calibrator_registry_on_every_command():
    from rtdeploy.precision.calibrators import list_calibrators

    commands = dict(_commands())
    for name in ("quantize", "run", "build-engine"):
        method = next(p for p in commands[name].params if p.name == "method")
        assert tuple(method.type.choices) == list_calibrators(), name
    assert "consumer-mse" in list_calibrators()  # run --method lacked it while api.run took it


def test_errors_name_fields_and_the_cli_flags(tmp_path):
    """One message, two renderings: the library names the config field, the CLI the flag that sets it."""
    from click.testing import CliRunner

    from rtdeploy.errors import PrecisionError

    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    with pytest.raises(PrecisionError) as e:
        api.quantize(model, fp16=True, keep_fp=2, stats_cache=False)
    assert str(e.value) == "keep_fp apply to int8 only"
    _register()
    res = CliRunner().invoke(cli, ["quantize", str(model), "--fp16", "--keep-fp", "2", "--no-stats-cache"])
    assert res.exit_code == 1 and res.output.strip() == "error: --keep-fp apply to --int8 only"
    with pytest.raises(PrecisionError, match="^give exactly one of int8 or fp16$"):
        api.quantize(model)
