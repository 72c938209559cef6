"""``rtdeploy doctor``: the installation, CUDA devices, and what each command is missing."""

from __future__ import annotations

import click

from rtdeploy.cli.generate import command
from rtdeploy.doctor import DoctorConfig
from rtdeploy.tables import format_table


@command("doctor", DoctorConfig)
def doctor(**options):
    """Show versions (Python, torch, onnx, onnxruntime and its providers, TensorRT, CUDA bindings),
    CUDA devices, and per command what is missing and how to get it. Always exits 0.

    \b
    Examples:
      rtdeploy doctor
      rtdeploy doctor --json
    """
    from rtdeploy import api

    report = api.doctor(**options)
    if options.get("json"):
        return
    click.echo(f"Python {report.python['version']} ({report.python['executable']})")
    click.echo(f"{report.platform['system']}, {report.platform['cpu']}, {report.platform['cores']} cores\n")
    notes = dict(report.problems)
    if report.packages.get("torch"):
        notes.setdefault("torch", f"CUDA {report.torch_cuda}" if report.torch_cuda else "CPU build")
    rows = [{"package": k, "version": v or "not installed", "note": notes.get(k, "")} for k, v in report.packages.items()]
    click.echo(format_table(rows))
    click.echo(f"\nonnxruntime providers: {', '.join(report.onnxruntime_providers) or 'none'}")
    if report.cuda_devices:
        for d in report.cuda_devices:
            click.echo(f"CUDA device {d['index']}: {d['name']} (compute {d['capability']}, {d['memory_gib']} GiB, seen by {d['seen_by']})")
    else:
        click.echo("CUDA devices: none visible" + (f" ({report.problems['torch.cuda']})" if "torch.cuda" in report.problems else ""))
    if report.gpu_extra:
        click.echo(f"TensorRT install: {report.gpu_extra['line']}")
    photos = report.calibration_photos
    click.echo(f"default calibration photos: {photos['path']} "
               + (f"({photos['images']} images; --calib-dir DIR replaces them)" if photos["images"] else "(missing: reinstall rtdeploy)"))
    click.echo("")
    rows = []
    for name in report.commands:
        missing = report.missing(name)
        rows.append({"command": name, "status": "ready" if not missing else "missing " + ", ".join(m.name for m in missing),
                     "how to get it": "; ".join(dict.fromkeys(m.fix for m in missing))})
    click.echo(format_table(rows))
