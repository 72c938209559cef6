"""A TensorRT release whose bindings cannot be imported here, as the real bindings of a later release
with the members it lacks hidden (``surface-8.5.3.json``, derived from NVIDIA's sources by
derive_surface.py).

``masked_module(real, surface)`` returns a module that is ``real`` except that hidden module names are
absent and every class or enum with hidden members is a stand-in type whose attributes are the real
ones minus those members. ``isinstance`` against a stand-in accepts the real objects (enum values,
instances) and mocks specced from it, so the fakes' signature checks still work; ``create_autospec`` of
a stand-in has no hidden member, so reading, setting or calling one fails like on the old release.
"""

from __future__ import annotations

import json
import types
from pathlib import Path


class _Masked(type):
    """Metaclass of a stand-in: instances of the real class count as instances of the stand-in."""

    def __instancecheck__(cls, obj):
        return getattr(obj, "__class__", None) is cls or isinstance(obj, cls.__real__)

    def __subclasscheck__(cls, sub):
        return sub is cls or issubclass(sub, cls.__real__)


def _masked_type(real: type, hidden: set[str]) -> type:
    attrs = {k: getattr(real, k) for k in dir(real) if k not in hidden and (not k.startswith("__") or k in ("__init__", "__doc__"))}
    members = getattr(real, "__members__", None)
    if isinstance(members, dict):
        attrs["__members__"] = {k: v for k, v in members.items() if k not in hidden}
    attrs["__real__"] = real
    attrs["__module__"] = real.__module__
    return _Masked(real.__name__, (), attrs)


def load_surface(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def masked_module(real: types.ModuleType, surface: dict) -> types.ModuleType:
    """``real`` (the bindings of ``surface["base"]``) narrowed to ``surface["release"]``."""
    assert real.__version__ == surface["base"], f"the surface is derived from {surface['base']}, not {real.__version__}"
    hidden = surface["hidden"]
    gone = set(hidden["module"])
    mod = types.ModuleType(real.__name__)
    for name in dir(real):
        if name in gone or (name.startswith("__") and name != "__doc__"):
            continue
        value = getattr(real, name)
        if name in hidden["members"]:
            value = _masked_type(value, set(hidden["members"][name]))
        setattr(mod, name, value)
    mod.__version__ = surface["release"]
    return mod
