"""FakeComfyUI against facts read in ComfyUI v0.3.64's source (cited per test: file and
function), for the details the recordings do not show: node order in branched graphs, history
outputs of cached nodes, interrupts before the first node, and ``status`` counts around
queue deletion."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import requests

from comfysync.testing import FakeComfyUI

from .driver import WsClient, barrier, post_prompt, run_prompt

Image = Any


def empty(color: int = 0) -> Dict[str, Any]:
    return {"class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": color}}


def invert(source: str) -> Dict[str, Any]:
    return {"class_type": "ImageInvert", "inputs": {"image": [source, 0]}}


def scale(source: str) -> Dict[str, Any]:
    return {"class_type": "ImageScale",
            "inputs": {"image": [source, 0], "upscale_method": "nearest-exact", "width": 4,
                       "height": 4, "crop": "disabled"}}


class Pair:
    """Output node with two image inputs (for diamonds)."""

    RETURN_TYPES: Tuple[str, ...] = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        return {"required": {"a": ("IMAGE",), "b": ("IMAGE",)}}

    def run(self, a: Image, b: Image) -> Dict[str, Any]:
        return {"ui": {"text": ["pair"]}, "result": ()}


class UiPass:
    """A non-output node that returns UI as well as its image."""

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        return {"required": {"image": ("IMAGE",)}}

    def run(self, image: Image) -> Dict[str, Any]:
        return {"ui": {"text": ["passed"]}, "result": (image,)}


def executing_order(fake_server: FakeComfyUI, prompt: Dict[str, Any]) -> List[Any]:
    with WsClient(fake_server.ws_url()) as ws:
        run_prompt(fake_server.url, ws, prompt)
        return [m["data"]["node"] for m in ws.messages("executing")]


# --------------------------------------------------------------------------- order
# ComfyUI: execution.py PromptExecutor.execute_async adds each output node to an ExecutionList
# (comfy_execution/graph.py TopologicalSort.add_node: depth-first, a stack popped from the end,
# inputs pushed in the node's input order; pending nodes keep insertion order), then
# ExecutionList.stage_node_execution picks among ready nodes with ux_friendly_pick_node: an
# output node first, else one that directly blocks an output, else one two links away, else
# the first ready node in pending order.
def test_chain_runs_in_dependency_order(fake_server: FakeComfyUI) -> None:
    prompt = {"1": empty(), "2": invert("1"), "3": scale("2"),
              "4": {"class_type": "ProbeText", "inputs": {"text": "x", "image": ["3", 0]}}}
    assert executing_order(fake_server, prompt) == ["1", "2", "3", "4", None]


def test_diamond_runs_the_last_pushed_branch_first(fake_server: FakeComfyUI) -> None:
    # pending after add_node("4"): 4, 3, 1, 2 (b's source popped first); after "1" both
    # branches are ready and both feed the output, so pending order decides: "3" first.
    fake_server.register_node("Pair", Pair)
    prompt = {"1": empty(), "2": invert("1"), "3": scale("1"),
              "4": {"class_type": "Pair", "inputs": {"a": ["2", 0], "b": ["3", 0]}}}
    assert executing_order(fake_server, prompt) == ["1", "3", "2", "4", None]


def test_direct_producer_of_an_output_beats_pending_order(fake_server: FakeComfyUI) -> None:
    # pending: 4, 2, 1, 3; ready at start: "1" (two links from the output) and "3" (feeds
    # it directly): the direct producer wins although "1" comes first in pending order.
    fake_server.register_node("Pair", Pair)
    prompt = {"1": empty(), "2": invert("1"), "3": empty(color=5),
              "4": {"class_type": "Pair", "inputs": {"a": ["3", 0], "b": ["2", 0]}}}
    assert executing_order(fake_server, prompt) == ["3", "1", "2", "4", None]


def test_ready_output_node_runs_before_other_branches(fake_server: FakeComfyUI) -> None:
    # Two outputs sharing "1": whichever output is added first, "4" is ready right after
    # "1" and is picked before "2" (output nodes first).
    prompt = {"1": empty(), "2": invert("1"),
              "3": {"class_type": "ProbeText", "inputs": {"text": "a", "image": ["2", 0]}},
              "4": {"class_type": "ProbeText", "inputs": {"text": "b", "image": ["1", 0]}}}
    assert executing_order(fake_server, prompt) == ["1", "4", "2", "3", None]


# ------------------------------------------------------------------ cached outputs
# ComfyUI v0.3.64: execution.py PromptExecutor.execute_async builds the history outputs from
# the UI cache (caches.ui.all_node_ids() / caches.ui.get) for every node of the prompt,
# whether or not the node was staged in this run and whatever the client_id.
def test_cached_non_output_node_ui_stays_in_history(fake_server: FakeComfyUI) -> None:
    fake_server.register_node("UiPass", UiPass)
    prompt = {"1": empty(), "2": {"class_type": "UiPass", "inputs": {"image": ["1", 0]}},
              "3": {"class_type": "ProbeText", "inputs": {"text": "t", "image": ["2", 0]}}}
    with WsClient(fake_server.ws_url()) as ws:
        first = run_prompt(fake_server.url, ws, prompt)
        mark = len(ws.snapshot())
        second = run_prompt(fake_server.url, ws, prompt)
        later = [f[1] for f in ws.snapshot()[mark:] if f[0] == "text"]
    history = requests.get(f"{fake_server.url}/history", timeout=5).json()
    assert history[first]["outputs"]["2"] == {"text": ["passed"]}
    assert history[second]["status"]["messages"][1][1]["nodes"] == ["1", "2", "3"]
    assert history[second]["outputs"] == history[first]["outputs"]
    assert history[second]["meta"]["2"]["node_id"] == "2"
    # execute(): only staged nodes (the output node) get ``executed`` from cache
    assert [m["data"]["node"] for m in later if m["type"] == "executed"] == ["3"]


def test_cached_outputs_in_history_without_client_id(fake_server: FakeComfyUI) -> None:
    prompt = {"2": {"class_type": "ProbeText", "inputs": {"text": "n"}}}
    first = post_prompt(fake_server.url, prompt).json()["prompt_id"]
    fake_server.wait_for_idle()
    second = post_prompt(fake_server.url, prompt).json()["prompt_id"]
    fake_server.wait_for_idle()
    history = requests.get(f"{fake_server.url}/history", timeout=5).json()
    assert history[second]["status"]["messages"][1][1]["nodes"] == ["2"]
    assert history[second]["outputs"] == history[first]["outputs"] == {"2": {"text": ["n"]}}


def test_interrupted_run_keeps_cached_ui_of_the_prompt(fake_server: FakeComfyUI) -> None:
    # "2" (cached, non-output, with UI) is never staged; the run is interrupted in "4".
    fake_server.register_node("UiPass", UiPass)
    base = {"1": empty(), "2": {"class_type": "UiPass", "inputs": {"image": ["1", 0]}},
            "3": {"class_type": "SaveImage",
                  "inputs": {"images": ["2", 0], "filename_prefix": "fid"}}}
    with WsClient(fake_server.ws_url()) as ws:
        run_prompt(fake_server.url, ws, base)
        slow = dict(base)
        slow["4"] = {"class_type": "ProbeSleep",
                     "inputs": {"image": ["2", 0], "seconds": 30.0, "seed": 3}}
        slow["5"] = {"class_type": "ProbeText", "inputs": {"text": "s", "image": ["4", 0]}}
        prompt_id = post_prompt(fake_server.url, slow, ws.sid).json()["prompt_id"]
        ws.wait_for_type("executing", lambda m: m["data"]["node"] == "4")
        fake_server.interrupt(prompt_id)
        ws.wait_done(prompt_id)
    entry = requests.get(f"{fake_server.url}/history/{prompt_id}", timeout=5).json()[prompt_id]
    assert entry["status"]["status_str"] == "error"
    assert set(entry["outputs"]) == {"2", "3"}
    assert entry["outputs"]["2"] == {"text": ["passed"]}


# ---------------------------------------------------------------------- interrupts
class InterruptOnIsChanged:
    """Output node whose IS_CHANGED sends a global interrupt: the flag is set after the
    prompt started (ComfyUI: execution.py execute_async resets it with
    nodes.interrupt_processing(False) before the caches evaluate IS_CHANGED)."""

    server: Any = None
    RETURN_TYPES: Tuple[str, ...] = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        return {"required": {"text": ("STRING", {"default": "x"})}}

    @classmethod
    def IS_CHANGED(cls, text: str) -> str:
        cls.server.interrupt()
        return text

    def run(self, text: str) -> Dict[str, Any]:
        return {"ui": {"text": [text]}, "result": ()}


def test_interrupt_before_the_first_node_runs(fake_server: FakeComfyUI) -> None:
    # execution.py _async_map_node_over_list calls nodes.before_node_execution() before the
    # node function, after execute() sent progress_state and executing for it; the
    # interrupt is reported with executed == [] and the history entry is an error.
    InterruptOnIsChanged.server = fake_server
    fake_server.register_node("InterruptOnIsChanged", InterruptOnIsChanged)
    prompt = {"1": {"class_type": "InterruptOnIsChanged", "inputs": {"text": "a"}}}
    with WsClient(fake_server.ws_url()) as ws:
        prompt_id = run_prompt(fake_server.url, ws, prompt)
        barrier(fake_server, ws)
        types = [t for t in ws.types() if t != "status"]
        interrupted = ws.wait_for_type("execution_interrupted")["data"]
    assert types == ["execution_start", "execution_cached", "progress_state", "executing",
                     "execution_interrupted", "executing"]
    assert interrupted["node_id"] == "1" and interrupted["executed"] == []
    entry = requests.get(f"{fake_server.url}/history/{prompt_id}", timeout=5).json()[prompt_id]
    assert entry["outputs"] == {} and entry["meta"] == {}
    assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
    assert [m[0] for m in entry["status"]["messages"]] == \
        ["execution_start", "execution_cached", "execution_interrupted"]


def test_interrupt_during_a_fully_cached_run_has_no_effect(fake_server: FakeComfyUI) -> None:
    # execute(): a cached node returns before any interruption point, so a fully cached run
    # succeeds; the flag left set is reset when the next prompt starts (execute_async).
    prompt = {"1": {"class_type": "ProbeText", "inputs": {"text": "c"}}}
    with WsClient(fake_server.ws_url()) as ws:
        run_prompt(fake_server.url, ws, prompt)
        InterruptOnIsChanged.server = fake_server
        fake_server.register_node("InterruptOnIsChanged", InterruptOnIsChanged)
        cached = {"1": {"class_type": "ProbeText", "inputs": {"text": "c"}},
                  "2": {"class_type": "InterruptOnIsChanged", "inputs": {"text": "c"}}}
        run_prompt(fake_server.url, ws, cached)  # "2" runs and is interrupted
        mark = len(ws.snapshot())
        second = run_prompt(fake_server.url, ws, prompt)  # fully cached again: no check point
        after = [f[1]["type"] for f in ws.snapshot()[mark:] if f[0] == "text"]
        third = run_prompt(fake_server.url, ws, {"1": {"class_type": "ProbeText",
                                                       "inputs": {"text": "d"}}})
    assert "execution_success" in after and "execution_interrupted" not in after
    history = requests.get(f"{fake_server.url}/history", timeout=5).json()
    assert history[second]["status"]["status_str"] == "success"
    assert history[third]["status"]["status_str"] == "success"


def test_idle_interrupt_sends_nothing(fake_server: FakeComfyUI) -> None:
    # server.py post_interrupt only sets the flag (nodes.interrupt_processing); no message.
    with WsClient(fake_server.ws_url()) as ws:
        mark = len(ws.snapshot())
        assert requests.post(f"{fake_server.url}/interrupt", json={}, timeout=5).status_code == 200
        barrier(fake_server, ws)
        assert ws.snapshot()[mark:] == []
        prompt_id = run_prompt(fake_server.url, ws, {"1": {"class_type": "ProbeText",
                                                           "inputs": {"text": "idle"}}})
    entry = requests.get(f"{fake_server.url}/history/{prompt_id}", timeout=5).json()[prompt_id]
    assert entry["status"]["status_str"] == "success"


# -------------------------------------------------------------------- queue counts
def test_status_counts_around_clear_and_delete(fake_server: FakeComfyUI) -> None:
    # execution.py PromptQueue.wipe_queue always calls server.queue_updated (even when
    # nothing is pending); delete_queue_item calls it once per removed item (twice for the
    # last pending one, through wipe_queue) and not at all for an unknown id;
    # get_tasks_remaining counts pending plus running items.
    with WsClient(fake_server.ws_url()) as ws:
        mark = len(ws.snapshot())
        requests.post(f"{fake_server.url}/queue", json={"clear": True}, timeout=5)
        requests.post(f"{fake_server.url}/queue", json={"delete": ["nope"]}, timeout=5)
        requests.post(f"{fake_server.url}/queue", json={"clear": False}, timeout=5)
        barrier(fake_server, ws)
        idle = [m["data"]["status"]["exec_info"]["queue_remaining"]
                for m in ws.messages("status")[len(ws.messages("status")) - 1:]]
        assert [f[1]["type"] for f in ws.snapshot()[mark:]] == ["status"]
        assert idle == [0]
        running = post_prompt(fake_server.url, {"1": empty(), "2": {
            "class_type": "ProbeSleep", "inputs": {"image": ["1", 0], "seconds": 30.0,
                                                   "seed": 9}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0],
                                                        "filename_prefix": "q"}}},
            ws.sid).json()["prompt_id"]
        ws.wait_for_type("executing", lambda m: m["data"]["node"] == "2")
        a = post_prompt(fake_server.url, {"1": empty(1), "2": {
            "class_type": "ProbeText", "inputs": {"text": "a"}}}, ws.sid).json()["prompt_id"]
        b = post_prompt(fake_server.url, {"1": empty(2), "2": {
            "class_type": "ProbeText", "inputs": {"text": "b"}}}, ws.sid).json()["prompt_id"]
        ws.wait_for_type("status", lambda m: m["data"]["status"]["exec_info"]
                         ["queue_remaining"] == 3)
        mark = len(ws.messages("status"))
        requests.post(f"{fake_server.url}/queue", json={"delete": [a, running]}, timeout=5)
        requests.post(f"{fake_server.url}/queue", json={"delete": [b]}, timeout=5)
        requests.post(f"{fake_server.url}/queue", json={"clear": True}, timeout=5)
        fake_server.interrupt(running)
        ws.wait_done(running)
        counts = [m["data"]["status"]["exec_info"]["queue_remaining"]
                  for m in ws.messages("status")[mark:]]
    assert counts == [2, 1, 1, 1, 0]
