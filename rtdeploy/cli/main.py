"""The ``rtdeploy`` command: a group of stage commands, each in its own module."""

from __future__ import annotations

import contextlib
import importlib
import sys

import click

from rtdeploy import __version__
from rtdeploy.cli import signals
from rtdeploy.cli.common import fail, interrupted, reader_went_away, setup_logging
from rtdeploy.errors import RtDeployError

# (module, attribute): each stage's command lives beside the others; a module not written yet is
# simply absent from --help.
COMMANDS = [
    ("rtdeploy.cli.summary_cmd", "summary"),
    ("rtdeploy.cli.export_cmd", "export"),
    ("rtdeploy.cli.import_cmd", "import_"),
    ("rtdeploy.cli.validate_cmd", "validate"),
    ("rtdeploy.cli.quantize_cmd", "quantize"),
    ("rtdeploy.cli.build_engine_cmd", "build_engine"),
    ("rtdeploy.cli.inspect_cmd", "inspect"),
    ("rtdeploy.cli.bench_cmd", "bench"),
    ("rtdeploy.cli.run_cmd", "run"),
    ("rtdeploy.cli.package_cmd", "package"),
    ("rtdeploy.cli.doctor_cmd", "doctor"),
]


class RtDeployGroup(click.Group):
    """The command group, with click's failures as one line each.

    A usage error (unknown command or option, a value outside a choice, a missing argument) is
    ``error: <what> (see 'rtdeploy CMD --help')`` and exit 2, the usage-error convention; click's
    own message names the accepted values and suggests a near command or option name.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:  # a bare `rtdeploy`: the help, not an error line
            e.show()
            sys.exit(e.exit_code)
        except click.UsageError as e:
            path = e.ctx.command_path if e.ctx is not None else (prog_name or "rtdeploy")
            fail(f"{e.format_message()} (see '{path} --help')", e.exit_code)
        except click.ClickException as e:
            fail(e.format_message(), e.exit_code)
        except click.Abort as e:  # an interrupt while click parsed the command line
            interrupted(e.__cause__ if isinstance(e.__cause__, KeyboardInterrupt) else KeyboardInterrupt())
        except KeyboardInterrupt as e:
            interrupted(e)
        sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)

    # click would answer a closed stdout (`rtdeploy --help | head -1`) with exit 1; help and commands
    # are printed from these two, so the quiet SIGPIPE exit is taken here first.
    def make_context(self, *args, **kwargs):
        with _quiet_when_stdout_closes():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _quiet_when_stdout_closes():
            return super().invoke(ctx)


@contextlib.contextmanager
def _quiet_when_stdout_closes():
    try:
        yield
    except BrokenPipeError:
        reader_went_away()


@click.group(cls=RtDeployGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="rtdeploy")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """rtdeploy: PyTorch ResNet -> ONNX -> FP16 / INT8 -> TensorRT engine -> benchmarks.

    \b
    Typical flow:
      rtdeploy export --model resnet50           # resnet50.onnx + resnet50.onnx.json
      rtdeploy import mynet.onnx --preprocess imagenet   # or adopt an ONNX made elsewhere
      rtdeploy validate resnet50.onnx            # onnxruntime vs PyTorch
      rtdeploy quantize resnet50.onnx --int8     # calibrated Q/DQ model
      rtdeploy build-engine --onnx resnet50.int8.onnx
      rtdeploy bench --depth 18,50 --backend onnxruntime
      rtdeploy run --depth 50                    # all of it, one report folder
    """
    setup_logging(verbose)


def _register() -> None:
    for module, attr in COMMANDS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module:
                continue
            raise
        cli.add_command(getattr(mod, attr))


def main() -> None:
    """Run the command line (the console script enters through :mod:`rtdeploy.cli.entry`, which puts
    the signal policy in place before this module is imported)."""
    signals.install()
    try:
        _register()  # the commands' choices read the registries, and so import the plugins
    except RtDeployError as e:  # a plugin that fails to import: one line, as any user error
        fail(e.render(lambda field: "--" + field.replace("_", "-")), e.exit_code)
    cli(prog_name="rtdeploy")


if __name__ == "__main__":
    main()
