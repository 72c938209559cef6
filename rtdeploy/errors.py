"""Errors a user can reach.

Every user-facing failure is an :class:`RtDeployError` whose message fits on one line and says what
was given, what is accepted, and what to do. The CLI prints it and exits non-zero; it never shows a
traceback for these.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_OPTION = re.compile(r"\{opt:([a-z][a-z0-9_]*)\}")


def opt(field: str) -> str:
    """How a library message names an option: by its config field. ``str(error)`` shows the field
    (``keep_fp``) to API users; the CLI shows the flag of the command that ran (``--keep-fp``)."""
    return "{opt:" + field + "}"


class RtDeployError(Exception):
    """Base class of every error a user can act on.

    ``exit_code`` is the process exit status the CLI uses for it. A message names options with
    :func:`opt`, so it reads right both from Python and from the command line (:meth:`render`).
    """

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))

    def __str__(self) -> str:
        return self.render(lambda field: field)

    def render(self, name_of: Callable[[str], str]) -> str:
        """The message with each option named by ``name_of(field)`` (the CLI passes field -> flag)."""
        return _OPTION.sub(lambda m: name_of(m.group(1)), str(self.args[0]) if self.args else "")


class UsageError(RtDeployError):
    """Options that contradict each other on the command line (exit 2, the usage-error convention)."""

    exit_code = 2


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived: unwinds like Ctrl-C (cleaning up partial files on the way)
    and ends the process with ``128 + signum``."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        import signal

        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"


class ModelError(RtDeployError):
    """Unknown depth, family or model option."""


class WeightsError(RtDeployError):
    """A weights file that is missing, unreadable, or does not fit the model."""


class ArtifactError(RtDeployError):
    """An input artifact (ONNX, engine, manifest) that is missing, corrupt or of the wrong kind."""


class OutputError(RtDeployError):
    """An output path that cannot be written."""


class ExportError(RtDeployError):
    """The ONNX export or its checks failed."""


class DataError(RtDeployError):
    """Images or tensors that cannot be read or used."""


class ValidationFailed(RtDeployError):
    """A candidate model is out of tolerance against its reference."""

    exit_code = 3


class PrecisionError(RtDeployError):
    """FP16 conversion or INT8 calibration cannot be done as asked."""


class EngineError(RtDeployError):
    """TensorRT engine building, loading or running failed."""


class MissingDependency(RtDeployError):
    """An optional dependency (TensorRT, CUDA, a GPU) is not available."""

    exit_code = 4


class BenchmarkError(RtDeployError):
    """A benchmark cannot be run as asked."""


class PackageError(RtDeployError):
    """A serving hand-off (Triton model repository) cannot be written as asked."""


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's message (or its type name), at most ``limit`` characters.

    Library errors (onnx, onnxruntime, torch, PIL) carry multi-line messages; a user-facing
    RtDeployError quotes only this line.
    """
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:limit]
