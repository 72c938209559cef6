"""Package faces that import nothing until a name is used.

A package's ``__init__`` hands its public names on (``from rtdeploy.trt import BuildOptions``);
importing every submodule there would make any import of the package import all of it (TensorRT's
runner, numpy) — and the command line imports every command's options on start. A face built here
imports a name's module on first use of that name (PEP 562).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_face(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """The ``__getattr__`` of package ``package``: each name of ``exports`` (name -> module) is
    imported from its module when first asked for, and kept in the package."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(importlib.import_module(package), name, value)
        return value

    return __getattr__
