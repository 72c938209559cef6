"""``rtdeploy run``: the whole pipeline in one command, into one report folder."""

from __future__ import annotations

from rtdeploy.cli.common import passive_thread_waits, say
from rtdeploy.cli.generate import command
from rtdeploy.pipeline.options import RunConfig

STATUS_MARK = {"made": "made", "reused": "reused", "skipped": "skipped", "failed": "FAILED"}


@command("run", RunConfig)
def run(**options):
    """Run the whole pipeline: export, validate, FP16, INT8, engines, bench, report.

    Stages whose inputs have not changed since the last run in the same folder are reused, and
    each says why (the parent's sha256, the options and the calibration data's content must all
    match). --rebench re-times only; --force STAGE redoes a stage and what depends on it. On a machine without TensorRT the engine stage is skipped with the
    reason, and everything else still runs. Exit status is non-zero when a stage failed (for
    example a precision out of tolerance); the report is written either way.

    \b
    Examples:
      rtdeploy run --depth 50
      rtdeploy run --depth 56 --weights resnet56-4bfd9763.th --calib-dir cifar10/calib --images cifar10/dev --keep-fp 20
    """
    passive_thread_waits()
    from rtdeploy import api
    from rtdeploy.errors import RtDeployError

    json_out = options.get("json")

    def show(rec):
        say(f"[{STATUS_MARK.get(rec.status, rec.status):>7}] {rec.name:<20} {rec.seconds:7.1f}s  {rec.detail}", json_out)

    report = api.run(**options, on_stage=show, show=lambda r: say(f"report: {r.report_md}", json_out))
    if report.failed:
        first = report.failed[0]
        raise RtDeployError(f"{len(report.failed)} stage(s) failed, first {first.name}: {first.detail}")
