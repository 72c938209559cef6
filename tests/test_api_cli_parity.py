"""Every command is a function of rtdeploy.api with the same options and defaults."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest

from rtdeploy import api
from rtdeploy.cli.main import _register, cli

# CLI options that only shape the CLI's own output (the API returns objects and shows no progress
# bar unless asked).
CLI_ONLY = {"json_out", "blocks_only", "progress", "no_progress"}
# (command, option): the CLI leaves it unset to detect a conflict, then applies the API's default.
UNSET_ON_PURPOSE = {("build-engine", "depth")}
# CLI spelling -> API parameter, where the CLI needs a negative flag or a reserved word.
RENAMED = {"no_engines": "engines", "no_bench": "bench", "no_calibrate": "calibrate", "no_progress": "progress",
           "no_stats_cache": "stats_cache", "compile_": "compile", "repo": "triton", "model_version": "version"}
# Options the API takes in one structured argument.
GROUPED = {"tol_": "tolerances", "precision": "precision"}


def _commands():
    _register()
    return sorted(cli.commands.items())


def _api_name(param: str) -> str:
    if param in RENAMED:
        return RENAMED[param]
    return next((target for prefix, target in GROUPED.items() if param.startswith(prefix)), param)


def _unset(default) -> bool:
    return default is None or type(default).__name__ == "Sentinel"


@pytest.mark.parametrize("name,command", _commands(), ids=[n for n, _ in _commands()])
def test_command_has_an_api_function_with_the_same_options(name, command):
    fn = getattr(api, {"import": "import_model"}.get(name, name.replace("-", "_")), None)
    assert fn is not None, f"rtdeploy.api has no function for `rtdeploy {name}`"
    params = inspect.signature(fn).parameters
    for p in command.params:
        if p.name in CLI_ONLY or p.name == "help":
            continue
        target = _api_name(p.name)
        assert target in params, f"`rtdeploy {name}` option {p.name!r} has no api.{fn.__name__} parameter {target!r}"
        api_default = params[target].default
        if (name, p.name) in UNSET_ON_PURPOSE:
            continue
        if p.name in RENAMED and p.name.startswith("no_"):
            assert api_default is True, f"api.{fn.__name__}({target}) should default to True (the CLI flag is --no-...)"
        elif _unset(p.default) or getattr(p, "is_flag", False):
            assert api_default in (None, False, (), inspect.Parameter.empty) or target in GROUPED.values() or \
                str(api_default) == str(p.default), f"{name} {p.name}: CLI default unset, api default {api_default!r}"
        else:
            assert str(api_default) == str(p.default if not isinstance(p.default, tuple) else tuple(p.default)), \
                f"{name} {p.name}: CLI default {p.default!r} != api default {api_default!r}"


# --- api <-> the stage's config dataclass: one declaration per option --------------------------
# (api function, config class, api parameter -> config field where the names differ,
#  config fields the api fills itself or only `rtdeploy run` sets (the calibration images held out
#  for validation), and fields whose api form is parsed into another type)
def _configs():
    from rtdeploy.bench.options import BenchConfig
    from rtdeploy.export import ExportConfig
    from rtdeploy.pipeline import RunConfig
    from rtdeploy.precision.quantize import QuantizeConfig
    from rtdeploy.trt import BuildOptions
    from rtdeploy.serving.package import PackageConfig
    from rtdeploy.validate import ValidateConfig

    return [
        (api.package, PackageConfig, {}, set(), set()),
        (api.export, ExportConfig, {}, set(), set()),
        (api.quantize, QuantizeConfig, {"stats_cache": "cache_dir"}, {"hold_out_validation"}, set()),
        (api.validate, ValidateConfig, {}, {"held_out"}, {"providers"}),
        (api.build_engine, BuildOptions, {"max_batch": None}, set(), {"batch"}),
        (api.run, RunConfig, {"precision": "precisions", "on_stage": None}, set(), {"precisions", "force"}),
        (api.bench, BenchConfig, {"depth": "depths", "model": "models", "precision": "precisions", "backend": "backends",
                                  "batch": "batches", "warmup": "warmup_s", "duration": "duration_s", "command": None},
         set(), {"depths", "models", "precisions", "backends", "batches", "streams", "warmup_s", "duration_s", "workdir",
                 "json", "markdown", "plot"}),
    ]


@pytest.mark.parametrize("fn,config,renamed,filled,parsed", _configs(), ids=lambda v: getattr(v, "__name__", ""))
def test_api_parameters_are_the_config_fields_with_the_same_defaults(fn, config, renamed, filled, parsed):
    import dataclasses

    fields = {f.name: f for f in dataclasses.fields(config)}
    params = inspect.signature(fn).parameters
    seen = set()
    for name, p in params.items():
        target = renamed.get(name, name)
        if target is None:
            continue
        assert target in fields, f"api.{fn.__name__}({name}) has no field {target!r} in {config.__name__}"
        seen.add(target)
        f = fields[target]
        if target in parsed or p.default is inspect.Parameter.empty:
            continue
        default = f.default if f.default is not dataclasses.MISSING else \
            f.default_factory() if f.default_factory is not dataclasses.MISSING else inspect.Parameter.empty
        if isinstance(default, Path) or isinstance(p.default, (str, os.PathLike)) and default is not None:
            default, api_default = str(default), str(p.default)
        else:
            api_default = p.default
        assert api_default == default or (api_default is None and default in ((), {})), \
            f"api.{fn.__name__}({name}={p.default!r}) but {config.__name__}.{target} defaults to {default!r}"
    missing = set(fields) - seen - filled
    assert not missing, f"{config.__name__} fields with no api.{fn.__name__} parameter: {sorted(missing)}"


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
