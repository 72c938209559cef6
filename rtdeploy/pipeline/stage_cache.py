"""Skip pipeline stages whose inputs have not changed.

A stage is keyed by its name, its options and the sha256 of every input artifact. The run
folder's ``stages.json`` records, per stage, that key and the sha256 of each output. On a re-run a
stage is skipped when its key is unchanged and every output still exists with the recorded hash;
``force`` redoes everything.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from rtdeploy.artifacts import sha256_file, write_json_atomic

log = logging.getLogger(__name__)


def stage_key(name: str, options: dict[str, Any], inputs: list[str | Path]) -> str:
    """A hex key over the stage name, its options and its input files' sha256 (or their absence)."""
    digests = [sha256_file(p) if Path(p).is_file() else f"missing:{p}" for p in inputs]
    payload = {"stage": name, "options": options, "inputs": digests}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class StageCache:
    """The record of finished stages in one run folder."""

    def __init__(self, folder: Path, *, force: bool = False):
        self.path = folder / "stages.json"
        self.force = force
        self.entries: dict[str, dict] = {}
        if self.path.exists() and not force:
            try:
                self.entries = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError):
                log.warning("ignoring unreadable %s; every stage will run", self.path)

    def is_fresh(self, name: str, key: str) -> bool:
        """True when ``name`` last ran with ``key`` and its outputs are unchanged on disk."""
        entry = self.entries.get(name)
        if self.force or not entry or entry.get("key") != key:
            return False
        outputs = entry.get("outputs", {})
        return all(Path(p).is_file() and sha256_file(p) == digest for p, digest in outputs.items())

    def result(self, name: str) -> Any:
        """The JSON-able result recorded for a fresh stage."""
        return self.entries[name].get("result")

    def record(self, name: str, key: str, outputs: list[str | Path], result: Any = None) -> None:
        """Record a finished stage (written at once, so an interrupted run keeps what it finished)."""
        self.entries[name] = {"key": key, "outputs": {str(p): sha256_file(p) for p in outputs}, "result": result}
        write_json_atomic(self.path, self.entries)
