"""Real ComfyUI transcripts for the REST tests.

The recordings (``*.jsonl``, one event per line, see their README) live in the shared
workspace next to the repository: ``<repo>/../shared/protocol/recordings``. A clone without
that directory must still run the tests, so the HTTP exchanges the tests need are copied into
``tests/data/`` as JSON; :func:`exchanges` reads those copies. Regenerate them with::

    python tests/_recordings.py

:func:`load_recording` reads an original ``.jsonl`` (for the test that checks the copies still
match the originals, skipped when the shared directory is absent).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(__file__).resolve().parent / "data"
RECORDINGS_DIR = Path(
    os.environ.get(
        "COMFYSYNC_RECORDINGS", str(REPO_ROOT.parent / "shared" / "protocol" / "recordings")
    )
)
OBJECT_INFO_FILE = RECORDINGS_DIR.parent / "object_info_v0.3.64.json"

# Recordings whose HTTP exchanges are copied into tests/data/exchanges/.
COPIED = [
    "rest_misc",
    "submit_validation_errors",
    "run_execution_error",
    "run_fully_cached",
    "run_interrupted",
    "run_outputs_variety",
    "run_progress_preview_metadata",
]
# Node definitions copied from the full v0.3.64 /object_info dump into tests/data/.
NODE_DEFS = [
    "CheckpointLoaderSimple",
    "LoraLoader",
    "KSampler",
    "SaveImage",
    "LoadImage",
    "AlignYourStepsScheduler",
    "ByteDanceImageEditNode",
    "CheckpointLoader",
]

Exchange = Dict[str, Any]


def recordings_available() -> bool:
    return RECORDINGS_DIR.is_dir()


def load_recording(name: str) -> List[Dict[str, Any]]:
    """Every line of ``<name>.jsonl`` from the shared recordings directory."""
    path = RECORDINGS_DIR / f"{name}.jsonl"
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def http_exchanges(records: List[Dict[str, Any]]) -> List[Exchange]:
    """The ``data`` of every HTTP exchange: ``request`` (method, path, params, json),
    ``status``, ``headers``, ``body``."""
    return [r["data"] for r in records if r.get("dir") == "http" and r.get("kind") == "exchange"]


def exchanges(name: str) -> List[Exchange]:
    """The copied HTTP exchanges of recording ``name`` (from ``tests/data``)."""
    with (DATA_DIR / "exchanges" / f"{name}.json").open(encoding="utf-8") as fh:
        data: List[Exchange] = json.load(fh)
    return data


def find(items: List[Exchange], method: str, path: str, nth: int = 0,
         status: Optional[int] = None) -> Exchange:
    """The ``nth`` exchange with this method and exact path (query included in ``path``)."""
    matches = [
        e for e in items
        if e["request"]["method"] == method and e["request"]["path"] == path
        and (status is None or e["status"] == status)
    ]
    if len(matches) <= nth:
        raise LookupError(f"no exchange #{nth} for {method} {path}")
    return matches[nth]


def node_defs() -> Dict[str, Any]:
    """A few real ``/object_info`` entries (classic, V3 combos, hidden, deprecated)."""
    with (DATA_DIR / "object_info_subset.json").open(encoding="utf-8") as fh:
        data: Dict[str, Any] = json.load(fh)
    return data


def refresh() -> None:
    """Rewrite the copies in ``tests/data`` from the shared recordings."""
    out = DATA_DIR / "exchanges"
    out.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        items = http_exchanges(load_recording(name))
        (out / f"{name}.json").write_text(json.dumps(items, indent=1) + "\n", encoding="utf-8")
    full = json.loads(OBJECT_INFO_FILE.read_text(encoding="utf-8"))
    subset = {name: full[name] for name in NODE_DEFS}
    (DATA_DIR / "object_info_subset.json").write_text(
        json.dumps(subset, indent=1) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    refresh()
    print(f"refreshed {DATA_DIR}")
