"""The one-command pipeline (``rtdeploy run``) and its re-run cache."""

from rtdeploy.faces import lazy_face

__getattr__ = lazy_face(__name__, {
    "RunConfig": "rtdeploy.pipeline.options", "RunReport": "rtdeploy.pipeline.run", "StageRecord": "rtdeploy.pipeline.run",
    "run_pipeline": "rtdeploy.pipeline.run",
})
__all__ = ["RunConfig", "RunReport", "StageRecord", "run_pipeline"]
