"""Progress of long work: bars in a terminal, one line per phase in a pipe (core).

The library never prints. It reports progress two ways, and the caller chooses what is shown:

- bars (tqdm, on stderr) where a stage is given ``progress=True``: the CLI does so when stderr
  is a terminal (or with ``--progress``);
- a line at the start of every phase of a long stage (export, calibration, adaptive rounding,
  each validation pass) on the ``rtdeploy.progress`` logger: the CLI shows these on stderr, with
  the time of day, when stderr is not a terminal (a pipe, a CI log), so a long run is never
  silent. API callers see them by attaching a handler to that logger.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Iterator

LOGGER = "rtdeploy.progress"
_log = logging.getLogger(LOGGER)


def phase(message: str, *args) -> None:
    """Announce the phase that starts now (``%``-style ``args``, as :mod:`logging` takes them)."""
    _log.info(message, *args)


def bar(total: int | None, enabled: bool, desc: str, unit: str = "img"):
    """A tqdm bar on stderr (inert when not ``enabled``); use as a context manager, ``update(n)``."""
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, file=sys.stderr, unit=unit, desc=desc, leave=False)


@contextlib.contextmanager
def ticking(desc: str, enabled: bool, every: float = 0.5) -> Iterator[None]:
    """Work that reports no steps (tracing a model): a bar that shows the time elapsed while it runs."""
    if not enabled:
        yield
        return
    from tqdm import tqdm

    done = threading.Event()
    with tqdm(total=None, file=sys.stderr, desc=desc, bar_format="{desc}: {elapsed}", leave=False) as t:
        ticker = threading.Thread(target=_tick, args=(t, done, every), daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()


def _tick(t, done: threading.Event, every: float) -> None:
    while not done.wait(every):
        t.refresh()


class _StderrLines(logging.Handler):
    """``HH:MM:SS message`` on whatever ``sys.stderr`` is when the line is written."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # stderr closed or gone: progress is not worth a failure
            pass


@contextlib.contextmanager
def phase_lines(enabled: bool = True) -> Iterator[None]:
    """Within the block, print phase lines on stderr (the CLI's pipe mode); nothing when not ``enabled``."""
    if not enabled:
        yield
        return
    handler, level, propagate = _StderrLines(), _log.level, _log.propagate
    _log.addHandler(handler)
    _log.setLevel(logging.INFO)
    _log.propagate = False
    try:
        yield
    finally:
        _log.removeHandler(handler)
        _log.setLevel(level)
        _log.propagate = propagate
