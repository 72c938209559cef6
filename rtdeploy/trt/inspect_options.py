"""``rtdeploy inspect``'s options, each declared once (:mod:`rtdeploy.options`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rtdeploy.errors import ValidationFailed
from rtdeploy.options import READS, JsonReport, Options, option

EXPECTABLE = ("fp32", "fp16", "int8")


@dataclass(frozen=True, kw_only=True)
class InspectConfig(JsonReport, Options):
    """What to inspect, and the precision every compute layer must run at (``expect``)."""

    error = ValidationFailed

    path: Path = option(argument=True, type=Path, path=READS, changes_output=False, metavar="FILE",
                        help="An engine plan, or a layer-information JSON (trtexec --exportLayerInfo, Polygraphy, an engine manifest).")
    expect: str | None = option(None, "--expect", choices=EXPECTABLE,
                                help="Exit 3 when any compute layer runs above this precision (layers kept in float by the manifest excepted).")
