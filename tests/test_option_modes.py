"""The mode rule, enumerated: every option of every command, given in every mode of that command.

An option that a mode ignores (another option, or the kind of the input, makes it do nothing) must
be refused in one line naming both options; an option a mode uses must be accepted. The spec below
(``IGNORED``) is written from what each stage does with its options, independently of the
declarations in rtdeploy (``When`` rules): the test holds one against the other. A new option
fails ``test_every_option_has_a_sample`` until it is given a sample value and its modes here.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from rtdeploy.cli.main import _register, cli
from rtdeploy.errors import RtDeployError
from rtdeploy.options import check_modes, declared, flag_of


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return mode_files(tmp_path_factory.mktemp("modes"))


def mode_files(d: Path) -> Path:
    """Inputs whose kind decides a mode, in ``d``: an FP32 ONNX, an INT8 one, an engine, calibration data."""
    from manifest_fakes import write_derived_manifest, write_engine_manifest, write_onnx_manifest

    from rtdeploy.models import model_meta

    meta = model_meta(20).to_dict()
    for name in ("m.onnx", "m.int8.onnx", "m.engine", "c.cache"):
        (d / name).write_bytes(b"bytes")
    write_onnx_manifest(d / "m.onnx", meta)
    write_derived_manifest(d / "m.int8.onnx", d / "m.onnx", "int8")
    write_engine_manifest(d / "m.engine", d / "m.onnx", precision="fp32", model=meta)
    (d / "calib").mkdir()
    return d


# A value other than the default for every option (paths relative to the `files` folder).
SAMPLES = {
    "model": "resnet18", "depth": 18, "num_classes": 5, "in_channels": 1, "variant": "v1", "image_size": 64,
    "weights": "w.pth", "calib_dir": "calib", "calib_size": 4, "method": "max", "percentile": 99.9, "seed": 1, "keep_fp": 2,
    "target_agreement": 0.99, "stats_cache": False, "progress": True, "json": "r.json", "int8": True, "fp16": True,
    "fp16_io": True, "trt_cache": "out.cache", "from_trt_cache": "c.cache", "trt_version": "8600", "target": "onnxruntime-cpu",
    "high_precision": "fp16", "output": "out.onnx", "opset": 13, "onnx": "m.onnx", "images": "calib", "samples": 4,
    "engines": False, "bench": False, "bench_duration": "2s", "bench_batch": "1,8", "outdir": "out", "force": "validate",
    "rebench": True, "reference": "torch", "tolerances": {"top1": 0.5}, "providers": ("cuda",), "calibrate": False,
    "workspace": "1G", "timing_cache": "t.cache", "builder_optimization_level": 2, "dla_core": 0, "gpu_fallback": True,
    "version_compatible": True, "tf32": True, "hardware_compatibility": "same-cc", "implicit_calibration": True, "backend": "torch",
    "device": "cuda", "warmup": "0", "iterations": 5, "duration": "2s", "streams": "2", "repeats": 2, "threads": 1,
    "cuda_graph": True, "channels_last": True, "compile": True, "workdir": "work", "markdown": "r.md", "plot": "r.png",
    "export_profile": "p.json", "export_times": "t.json", "command": "rtdeploy bench", "blocks_only": True,
    "preprocess": "cifar", "size": 32, "mean": "0.5,0.5,0.5", "std": "0.2,0.2,0.2", "layout": "NCHW", "classes": 10,
    "name": "net", "expect": "int8", "path": "m.engine", "artifact": "m.onnx", "triton": "repo", "version": 2,
    "max_batch": 8, "preferred_batch": "4", "max_queue_delay_us": 50, "instances": 2, "kind": "cpu",
    "hold_out_validation": True, "held_out": True,
}
# Per command, a sample that differs from the one above.
COMMAND_SAMPLES = {
    ("build-engine", "batch"): "8", ("build-engine", "precision"): "int8", ("export", "batch"): "4",
    ("validate", "batch"): 4, ("bench", "batch"): "1,8", ("bench", "model"): "resnet18", ("bench", "depth"): "18",
    ("bench", "precision"): "fp16", ("run", "precision"): "fp32,int8", ("package", "force"): True, ("validate", "seed"): 1,
    ("validate", "model"): "m.onnx", ("quantize", "model"): "m.onnx", ("import", "model"): "m.onnx",
    ("quantize", "weights"): "adaround", ("build-engine", "trt_version"): "8.6",
}

# Per command: its modes (the options that put it in that mode), and in each mode the options it
# ignores, with the option that makes them do nothing.
MODES = {
    "quantize": {
        "int8": dict(model="m.onnx", int8=True),
        "int8 percentile": dict(model="m.onnx", int8=True, method="percentile"),
        "int8 writing a cache": dict(model="m.onnx", int8=True, trt_cache="out.cache"),
        "int8 onnxruntime-cpu": dict(model="m.onnx", int8=True, target="onnxruntime-cpu"),
        "int8 from a cache": dict(model="m.onnx", int8=True, from_trt_cache="c.cache"),
        "fp16": dict(model="m.onnx", fp16=True),
    },
    "run": {
        "all precisions": dict(model="resnet18"),
        "no int8": dict(model="resnet18", precision="fp32,fp16"),
        "fp32 only": dict(model="resnet18", precision="fp32"),
        "no bench": dict(model="resnet18", bench=False),
        "no engines": dict(model="resnet18", engines=False),
        "given onnx": dict(onnx="m.onnx"),
    },
    "build-engine": {
        "export and calibrate int8": dict(model="resnet18", precision="int8"),
        "export fp32": dict(model="resnet18", precision="fp32"),
        "fp16 from fp32 onnx": dict(onnx="m.onnx", precision="fp16"),
        "given int8 onnx": dict(onnx="m.int8.onnx"),
        "implicit calibration": dict(onnx="m.onnx", precision="int8", implicit_calibration=True, calib_dir="calib"),
        "no calibration": dict(onnx="m.onnx", precision="int8", calibrate=False),
        "dla": dict(model="resnet18", precision="int8", dla_core=0, batch="8"),
    },
    "bench": {
        "sweep onnxruntime": dict(),
        "sweep torch": dict(backend="torch"),
        "sweep tensorrt": dict(backend="tensorrt"),
        "given onnx": dict(model="m.onnx"),
        "given engine": dict(model="m.engine"),
    },
    "validate": {"onnx": dict(model="m.onnx"), "engine": dict(model="m.engine")},
    "export": {"default": dict()},
    "summary": {"default": dict()},
    "import": {"default": dict(model="m.onnx")},
    "inspect": {"default": dict(path="m.engine")},
    "package": {"default": dict(artifact="m.onnx", triton="repo")},
    "doctor": {"default": dict()},
}

_INT8_SCALES = {"method": "int8", "percentile": "method", "keep_fp": "int8", "target_agreement": "int8", "trt_cache": "int8",
                "from_trt_cache": "int8", "target": "int8", "high_precision": "int8", "weights": "int8"}
_MODEL = {"model": "onnx", "depth": "onnx", "num_classes": "onnx", "in_channels": "onnx", "variant": "onnx", "image_size": "onnx",
          "weights": "onnx"}
# With the model named, the depth alias and a given ONNX would each be ignored.
_NAMED = {"depth": "model", "onnx": "model"}
IGNORED = {
    "quantize": {
        "int8": {"percentile": "method", "fp16_io": "fp16", "trt_version": "trt_cache"},
        "int8 percentile": {"fp16_io": "fp16", "trt_version": "trt_cache", "from_trt_cache": "method"},
        "int8 writing a cache": {"percentile": "method", "fp16_io": "fp16", "target": "trt_cache"},
        "int8 onnxruntime-cpu": {"percentile": "method", "fp16_io": "fp16", "keep_fp": "target", "target_agreement": "target",
                                 "trt_cache": "target", "from_trt_cache": "target", "high_precision": "target", "weights": "target",
                                 "trt_version": "trt_cache"},
        "int8 from a cache": {"method": "from_trt_cache", "percentile": "method", "fp16_io": "fp16", "trt_version": "trt_cache",
                              "calib_dir": "calibrates", "calib_size": "quantizes", "seed": "quantizes", "target": "from_trt_cache",
                              "hold_out_validation": "calibrates"},
        "fp16": {**_INT8_SCALES, "trt_version": "trt_cache"},
    },
    "run": {
        "all precisions": {"percentile": "method", **_NAMED},
        "no int8": {"percentile": "method", "method": "makes_int8", "keep_fp": "makes_int8", "target_agreement": "makes_int8", **_NAMED},
        "fp32 only": {"percentile": "method", "method": "makes_int8", "keep_fp": "makes_int8", "target_agreement": "makes_int8",
                      "calib_dir": "calibrates", "calib_size": "quantizes", "seed": "quantizes", **_NAMED},
        "no bench": {"percentile": "method", "rebench": "bench", "bench_duration": "bench", "bench_batch": "bench", **_NAMED},
        "no engines": {"percentile": "method", **_NAMED},
        "given onnx": {"percentile": "method", **_MODEL},
    },
    "build-engine": {
        "export and calibrate int8": {"percentile": "method", "gpu_fallback": "dla_core", **_NAMED},
        "export fp32": {"percentile": "method", "gpu_fallback": "dla_core", "method": "calibrates_int8", "keep_fp": "calibrates_int8",
                        "target_agreement": "calibrates_int8", "calib_dir": "calibrates", "calib_size": "quantizes", "seed": "quantizes",
                        **_NAMED},
        "fp16 from fp32 onnx": {**{k: "onnx" for k in _MODEL if k != "weights"}, "percentile": "method", "gpu_fallback": "dla_core",
                                "method": "calibrates_int8", "keep_fp": "calibrates_int8", "target_agreement": "calibrates_int8"},
        "given int8 onnx": {**{k: "onnx" for k in _MODEL if k != "weights"}, "percentile": "method", "gpu_fallback": "dla_core",
                            "method": "calibrates_int8", "keep_fp": "calibrates_int8", "target_agreement": "calibrates_int8",
                            "calib_dir": "calibrates", "calib_size": "quantizes", "seed": "quantizes"},
        "implicit calibration": {**{k: "onnx" for k in _MODEL if k != "weights"}, "percentile": "method", "gpu_fallback": "dla_core",
                                 "method": "calibrates_int8", "keep_fp": "calibrates_int8", "target_agreement": "calibrates_int8",
                                 "calib_size": "quantizes", "seed": "quantizes"},
        "no calibration": {**{k: "onnx" for k in _MODEL if k != "weights"}, "percentile": "method", "gpu_fallback": "dla_core",
                           "method": "calibrates_int8", "keep_fp": "calibrates_int8", "target_agreement": "calibrates_int8",
                           "calib_dir": "calibrates", "calib_size": "quantizes", "seed": "quantizes"},
        "dla": {"percentile": "method", **_NAMED},
    },
    "bench": {
        "sweep onnxruntime": {"cuda_graph": "backends_used", "channels_last": "backends_used", "compile": "backends_used"},
        "sweep torch": {"cuda_graph": "backends_used"},
        "sweep tensorrt": {"channels_last": "backends_used", "compile": "backends_used", "threads": "backends_used"},
        "given onnx": {"depth": "model", "precision": "files", "backend": "files", "image_size": "files", "cuda_graph": "backends_used",
                       "channels_last": "backends_used", "compile": "backends_used"},
        "given engine": {"depth": "model", "precision": "files", "backend": "files", "image_size": "files",
                         "channels_last": "backends_used", "compile": "backends_used", "threads": "backends_used"},
    },
    # held_out (set by `rtdeploy run`) picks the held-out part of --images: nothing without them.
    "validate": {"onnx": {"held_out": "images"}, "engine": {"providers": "model", "held_out": "images"}},
}
@functools.cache
def _commands():
    _register()
    return dict(sorted(cli.commands.items()))


def _value(command: str, name: str, folder: Path):
    """The sample of option ``name`` of ``command``; a path one inside ``folder``."""
    value = COMMAND_SAMPLES.get((command, name), SAMPLES.get(name))
    option = next(o for f, o in declared(_commands()[command].config_class) if f.name == name)
    is_path = option.type is Path or option.path is not None or isinstance(value, str) and (folder / value).exists()
    return folder / value if is_path and isinstance(value, str) else value


def test_every_option_has_a_sample_and_every_command_its_modes():
    for name, command in _commands().items():
        assert name in MODES, f"`rtdeploy {name}` has no modes in this spec"
        missing = [f.name for f, o in declared(command.config_class) if f.name not in SAMPLES and (name, f.name) not in COMMAND_SAMPLES]
        assert not missing, f"`rtdeploy {name}` options without a sample: {missing}"
        assert set(IGNORED.get(name, {})) <= set(MODES[name])


def _pairs(command: str):
    cls = _commands()[command].config_class
    for mode, base in MODES[command].items():
        for f, o in declared(cls):
            if f.name not in base:
                yield mode, f.name


def _judge(command: str, mode: str, option: str, files: Path) -> str | None:
    """What is wrong with ``option`` given in ``mode`` of ``command`` (None: it is as the spec says)."""
    cls = _commands()[command].config_class
    base = {k: (files / v if isinstance(v, str) and (files / v).exists() else v) for k, v in MODES[command][mode].items()}
    cfg = cls(**base, **{option: _value(command, option, files)})
    decider = IGNORED.get(command, {}).get(mode, {}).get(option)
    try:
        check_modes(cfg)
    except RtDeployError as e:
        line = e.render(lambda field: flag_of(cls, field))
        if decider is None:
            return f"refused although it applies: {line}"
        if "\n" in line or flag_of(cls, option) not in line:
            return f"the refusal does not name {flag_of(cls, option)}: {line}"
        if decider in {f.name for f, _ in declared(cls)} and flag_of(cls, decider) not in line:
            return f"the refusal does not name {flag_of(cls, decider)}: {line}"
        return None
    return f"accepted although {decider} makes it do nothing" if decider is not None else None


@pytest.mark.parametrize("command", sorted(MODES))
def test_an_option_is_used_in_its_modes_and_refused_in_the_others(command, files):
    """Every (mode, option) pair of ``command``: accepted where it does something, refused in one line
    naming both options where it would be ignored."""
    problems = [f"{mode} / {option}: {why}" for mode, option in _pairs(command)
                if (why := _judge(command, mode, option, files)) is not None]
    assert not problems, "\n".join(problems)


def test_the_matrix_covers_every_command():
    pairs = [(c, m, o) for c in _commands() for m, o in _pairs(c)]
    assert {c for c, _, _ in pairs} == set(_commands())
    refused = sum(1 for c, m, o in pairs if o in IGNORED.get(c, {}).get(m, {}))
    assert len(pairs) > 400 and refused > 100, (len(pairs), refused)
