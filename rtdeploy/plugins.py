"""Plugins: user code that registers models and calibrators in every rtdeploy process.

A plugin is a module whose import calls :func:`rtdeploy.models.register_model` or
:func:`rtdeploy.precision.calibrators.register_calibrator`. rtdeploy imports, once per process and
only when a registry is first consulted:

- every ``rtdeploy.plugins`` entry point of the installed packages (``pyproject.toml``:
  ``[project.entry-points."rtdeploy.plugins"] mynet = "mynet.rtdeploy_models"``);
- the modules named in ``$RTDEPLOY_PLUGINS`` (comma-separated, importable from ``sys.path``).

A plugin that fails to import is one line naming it, never a traceback.
"""

from __future__ import annotations

import importlib
import os

from rtdeploy.errors import RtDeployError, first_line

GROUP = "rtdeploy.plugins"
ENV = "RTDEPLOY_PLUGINS"

_loaded: set[str] = set()


def plugin_names() -> list[tuple[str, object]]:
    """``(label, loader)`` of every plugin: the entry points, then ``$RTDEPLOY_PLUGINS``'s modules."""
    from importlib.metadata import entry_points

    found: list[tuple[str, object]] = [(f"entry point {ep.name} ({ep.value})", ep.load) for ep in entry_points(group=GROUP)]
    for module in (m.strip() for m in os.environ.get(ENV, "").split(",")):
        if module:
            found.append((f"{ENV} module {module}", lambda m=module: importlib.import_module(m)))
    return found


def filled(registry: dict, builtin: str, register_builtins, register) -> dict:
    """``registry`` with its built-in entries first (registered by ``register_builtins(register)``
    when ``builtin``, one of them, is missing) and every plugin's entries after them."""
    if builtin not in registry:
        users = dict(registry)
        registry.clear()
        register_builtins(register)
        registry.update(users)
    load_plugins()
    return registry


def load_plugins() -> None:
    """Import every plugin not imported yet in this process.

    Raises:
        RtDeployError: a plugin failed to import (its first error line, and how to fix it).
    """
    for label, load in plugin_names():
        if label in _loaded:
            continue
        _loaded.add(label)
        try:
            load()
        except RtDeployError:
            raise
        except Exception as e:  # a plugin is user code: anything can go wrong in it
            raise RtDeployError(f"plugin {label} failed to load: {type(e).__name__}: {first_line(e)}; "
                                f"fix it, or uninstall it / remove it from ${ENV}") from e
