"""Progress bars for TensorRT's engine build (minutes for a large model at a high optimization level).

TensorRT 10 and later report the build's phases through ``IProgressMonitor`` (set as
``IBuilderConfig.progress_monitor``): ``phase_start(name, parent, steps)``, ``step_complete(name,
step)`` (return True to go on) and ``phase_finish(name)``. Each phase here is a bar on stderr,
indented under its parent phase. TensorRT 8.6 has no monitor: the build then runs without bars.
"""

from __future__ import annotations

import logging
import sys

from rtdeploy.trt.loader import trt_version

log = logging.getLogger(__name__)


def attach_progress_monitor(trt, features, config) -> object | None:
    """Show the build's phases as bars on stderr; the monitor (keep it alive until the build
    ends), or None where this TensorRT has no progress monitor (``features.progress_monitor``)."""
    if not features.progress_monitor:
        log.info("TensorRT %s reports no build progress; building without a progress bar", trt_version(trt))
        return None
    monitor = _monitor_class(trt.IProgressMonitor)()
    config.progress_monitor = monitor
    return monitor


def _monitor_class(base: type) -> type:
    from tqdm import tqdm

    class PhaseBars(base):
        """One stderr bar per active build phase."""

        def __init__(self):
            base.__init__(self)  # the binding's own constructor must run (pybind11 trampoline)
            self.bars: dict[str, tqdm] = {}
            self.depth: dict[str, int] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            depth = self.depth[parent_phase] + 1 if parent_phase in self.depth else 0
            self.depth[phase_name] = depth
            self.bars[phase_name] = tqdm(total=num_steps, desc="  " * depth + str(phase_name), position=depth, leave=False,
                                         file=sys.stderr, unit="step")

        def step_complete(self, phase_name, step):
            bar = self.bars.get(phase_name)
            if bar is not None:
                bar.n = min(step + 1, bar.total or step + 1)
                bar.refresh()
            return True  # never cancel the build

        def phase_finish(self, phase_name):
            self.depth.pop(phase_name, None)
            bar = self.bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

    return PhaseBars


def close_bars(monitor) -> None:
    """Close the bars of phases a failed or interrupted build left open (None: nothing to do)."""
    for bar in getattr(monitor, "bars", {}).values():
        bar.close()
