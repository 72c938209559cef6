"""Errors of the libraries the stages call, as one line at the stage boundary.

onnxruntime, onnx (with protobuf under it), numpy and PIL raise their own exception types, often
with messages of many lines, for what is in the end a fact about the user's model or data: an op
onnxruntime cannot run, a graph that breaks an ONNX rule, an array that does not fit in memory, an
image that cannot be decoded. Every stage's entry function is wrapped by :func:`stage_boundary`,
so such an error leaves the stage as the stage's own :class:`rtdeploy.errors.RtDeployError`: one
line naming the stage, the library and the first line of its message, and what to do. So does a
``MemoryError`` from anywhere. Any other exception is a fault of rtdeploy itself and keeps its
traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from rtdeploy.errors import RtDeployError, first_line

F = TypeVar("F", bound=Callable)

# Top-level package -> (the name users know, what to do). protobuf's errors come from onnx's loader.
_LIBRARIES = {
    "onnxruntime": ("onnxruntime", "rtdeploy runs the model in onnxruntime, which must load and run it: an op from a custom "
                                   "domain needs its own library — replace it with standard ONNX ops"),
    "onnx": ("onnx", "the graph breaks an ONNX rule: fix or re-export the model, then import it again"),
    "google": ("protobuf", "the file is not a readable ONNX model: re-export it"),
    "numpy": ("numpy", "the model's declared shapes and the data do not fit together: check the input size the model "
                       "declares against the data"),
    "PIL": ("PIL", "an image cannot be decoded: remove it or save it again as PNG/JPEG"),
}
_OUT_OF_MEMORY = "give a smaller --batch, fewer samples, or run it on a machine with more memory"


def library_of(error: BaseException) -> str | None:
    """The library an exception comes from (a key of ``_LIBRARIES``), or None for any other.

    By the package its class is defined in, or, for a builtin exception type (ValueError,
    OSError ...), by the package of the innermost frame that raised it.
    """
    root = type(error).__module__.split(".")[0]
    if root in _LIBRARIES:
        return root
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        root = str(tb.tb_frame.f_globals.get("__name__", "")).split(".")[0]
        if root in _LIBRARIES:
            return root
    return None


def translate(error: BaseException, stage: str, error_class: type[RtDeployError]) -> RtDeployError | None:
    """The one-line error of ``stage`` for a library's exception (None: not a library's, left as is)."""
    if isinstance(error, RtDeployError) or not isinstance(error, Exception):
        return None
    if isinstance(error, MemoryError):
        return error_class(f"{stage} ran out of memory ({first_line(error, 160)}); {_OUT_OF_MEMORY}")
    library = library_of(error)
    if library is None:
        return None
    name, advice = _LIBRARIES[library]
    return error_class(f"{stage} stopped in {name}: {first_line(error, 240)}; {advice}")


def stage_boundary(stage: str, error_class: type[RtDeployError]) -> Callable[[F], F]:
    """Decorate a stage's entry function: a library's exception leaves it as ``error_class``
    (see :func:`translate`); the original stays chained as ``__cause__`` for debugging."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                translated = translate(e, stage, error_class)
                if translated is None:
                    raise
                raise translated from e

        return wrapper  # type: ignore[return-value]

    return decorate
