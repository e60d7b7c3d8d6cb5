"""API-format workflows on FakeComfyUI's probe nodes, shared by the core run tests."""

from __future__ import annotations

from typing import Any, Dict


def text_wf(text: str = "hello", *, steps: int = 2, delay_ms: int = 0, preview: str = "none",
            seed: int = 0, save: bool = False) -> Dict[str, Any]:
    """Empty image → progress bar (``steps``, previews) → text output (and a SaveImage)."""
    wf: Dict[str, Any] = {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0x336699}},
        "2": {"class_type": "ProbeProgress",
              "inputs": {"image": ["1", 0], "steps": steps, "delay_ms": delay_ms,
                         "preview": preview, "seed": seed}},
        "3": {"class_type": "ProbeText", "inputs": {"text": text, "image": ["2", 0]}},
    }
    if save:
        wf["4"] = {"class_type": "SaveImage",
                   "inputs": {"images": ["2", 0], "filename_prefix": "core/run"}}
    return wf


def sleep_wf(seconds: float, seed: int = 0, text: str = "slept") -> Dict[str, Any]:
    """Empty image → a node sleeping ``seconds`` (interruptible) → text output ``text``."""
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ProbeSleep",
              "inputs": {"image": ["1", 0], "seconds": seconds, "seed": seed}},
        "3": {"class_type": "ProbeText", "inputs": {"text": text, "image": ["2", 0]}},
    }
