"""Which run (spec.runId) of each task this node has completed, kept in the state dir.

A disk-pressure run before the operator's run is done writes a runId of its own into
the task status, so the status alone cannot tell which operator run was done; without
this record a restarted agent would run one again. Losing the file is safe: at worst
one run repeats."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Collection
from pathlib import Path

log = logging.getLogger("imageprune.agent.ledger")


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._runs = self._load()

    def done(self, task: str) -> str | None:
        return self._runs.get(task)

    def record(self, task: str, run_id: str) -> None:
        self._runs[task] = run_id
        self._save()

    def keep_only(self, tasks: Collection[str]) -> None:
        """Forget deleted tasks (a task re-created under the same name starts afresh)."""
        if set(self._runs) - set(tasks):
            self._runs = {t: r for t, r in self._runs.items() if t in tasks}
            self._save()

    def _load(self) -> dict[str, str]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            log.warning("ignoring unreadable run ledger %s: %s", self.path, err)
            return {}
        if not isinstance(document, dict):
            log.warning("ignoring run ledger %s: not a JSON object", self.path)
            return {}
        return {str(k): v for k, v in document.items() if isinstance(v, str)}

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        except OSError as err:
            log.warning("cannot save the run ledger %s: %s", self.path, err)
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(self._runs, file, sort_keys=True)
            os.replace(temporary, self.path)
        except OSError as err:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            log.warning("cannot save the run ledger %s: %s", self.path, err)
