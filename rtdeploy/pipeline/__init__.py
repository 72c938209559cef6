"""The one-command pipeline (``rtdeploy run``) and its re-run cache."""

from rtdeploy.pipeline.run import RunConfig, RunReport, StageRecord, run_pipeline

__all__ = ["RunConfig", "RunReport", "StageRecord", "run_pipeline"]
