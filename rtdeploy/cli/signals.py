"""The ``rtdeploy`` process's one signal policy, from its first line to its exit.

SIGINT, SIGTERM and SIGHUP are alike, and where one lands decides what it does:

- **start-up and work**: it unwinds the command as :class:`rtdeploy.errors.Interrupted` (partial
  files are removed on the way), which ends as one line, ``error: interrupted (SIGTERM); no
  partial output was kept``, and exit ``128 + signal``; any further signal is ignored meanwhile.
- **inside an import** (every heavy library is imported lazily, so this is any moment of a
  command): it is held until the outermost import has finished, then acted on as above. An
  exception raised inside an import is not safe to raise: torch's C initialisation imports numpy
  and swallows any error there (the signal was lost and the command finished with exit 0), and a
  half-initialised library makes the next import fail with a long ImportError.
- **while an artifact and its manifest are put in place**: held by
  :mod:`rtdeploy.artifacts` until both are written, then acted on as above.
- **shutdown** (the command's exit status is decided, its outputs are complete): ignored, so the
  interpreter's own exit handlers finish and the status stays the command's own.

Nothing here is installed on import: :func:`install` is called by the command's entry point
(:mod:`rtdeploy.cli.entry`), never by library users, whose own handlers stay theirs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

from rtdeploy.errors import Interrupted

INTERRUPT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

# The modules whose frames are on the stack while anything is being imported.
_IMPORT_MACHINERY = frozenset({"importlib._bootstrap", "importlib._bootstrap_external"})

# How often the waiting thread looks whether the main thread has left its imports.
_POLL_S = 0.005


class _Policy:
    """The handler of the three signals; ``held`` is the signal waiting for an import to end."""

    def __init__(self) -> None:
        self.held: int | None = None

    def on_signal(self, signum: int, frame) -> None:
        if self.held is not None:  # one is already on its way
            return
        if importing(frame):
            self.held = signum
            threading.Thread(target=self._release_after_imports, name="rtdeploy-signal", daemon=True).start()
            return
        ignore_interrupts()
        raise Interrupted(signum)

    def _release_after_imports(self) -> None:
        main = threading.main_thread().ident
        while importing(sys._current_frames().get(main)):
            time.sleep(_POLL_S)
        signum, self.held = self.held, None
        # Sent again to the process: the main thread runs the handler at its next instruction (or
        # ignores it, when the command finished meanwhile and shutdown has begun).
        os.kill(os.getpid(), signum)


def install() -> None:
    """Put the policy in place for SIGINT, SIGTERM and SIGHUP (main thread only)."""
    policy = _Policy()
    for s in INTERRUPT_SIGNALS:
        signal.signal(s, policy.on_signal)


def ignore_interrupts() -> None:
    """Ignore further SIGINT/SIGTERM/SIGHUP (main thread only; elsewhere nothing to do)."""
    with contextlib.suppress(ValueError):  # not the main thread
        for s in INTERRUPT_SIGNALS:
            signal.signal(s, signal.SIG_IGN)


def importing(frame) -> bool:
    """True when ``frame`` or one of its callers belongs to Python's import machinery."""
    while frame is not None:
        if frame.f_globals.get("__name__") in _IMPORT_MACHINERY:
            return True
        frame = frame.f_back
    return False


def interruption(e: BaseException) -> tuple[str, int]:
    """The one line (without ``error:``) and the exit status, ``128 + signal``, of an interrupt."""
    signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
    name = e.signal_name if isinstance(e, Interrupted) else "SIGINT"
    return f"interrupted ({name}); no partial output was kept", 128 + signum
