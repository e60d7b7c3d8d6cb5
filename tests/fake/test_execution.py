"""FakeComfyUI's worker: caching, order, interrupts, queue deletion and priority, errors,
routing of previews and messages, custom nodes, history timing, the default workflow."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
import requests

from comfysync.testing import FakeComfyUI, NodeInterrupted, ProgressBar, current_context

from .driver import WsClient, barrier, binary_type, post_prompt, run_prompt

DEFAULT_WORKFLOW = Path(__file__).resolve().parents[2] / "comfysync" / "data" / \
    "default_workflow_api.json"


def chain(seconds: float = 0.0, text: str = "done", seed: int = 1) -> Dict[str, Any]:
    """EmptyImage → ProbeSleep → ProbeText."""
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ProbeSleep",
              "inputs": {"image": ["1", 0], "seconds": seconds, "seed": seed}},
        "3": {"class_type": "ProbeText", "inputs": {"text": text, "image": ["2", 0]}},
    }


def progress_prompt(preview: str = "JPEG", steps: int = 2, seed: int = 7) -> Dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 16, "height": 8, "batch_size": 1, "color": 255}},
        "2": {"class_type": "ProbeProgress",
              "inputs": {"image": ["1", 0], "steps": steps, "delay_ms": 0, "preview": preview,
                         "seed": seed}},
        "3": {"class_type": "ProbeText", "inputs": {"text": "x", "image": ["2", 0]}},
    }


def types_after(ws: WsClient, start: int) -> List[str]:
    return ws.types()[start:]


# ------------------------------------------------------------------------- caching
def test_identical_resubmission_is_fully_cached(fake_server: FakeComfyUI) -> None:
    with WsClient(fake_server.ws_url()) as ws:
        run_prompt(fake_server.url, ws, chain())
        mark = len(ws.snapshot())
        second = run_prompt(fake_server.url, ws, chain())
        cached = ws.wait_for_type("execution_cached", start=mark)
        assert cached["data"]["nodes"] == ["1", "2", "3"]
        assert types_after(ws, mark) == [
            "status", "status", "execution_start", "execution_cached", "executed",
            "progress_state", "execution_success", "status", "executing"]
        executed = ws.messages("executed")[-1]["data"]
        assert executed["output"] == {"text": ["done", "(1, 8, 8, 3)"]}
        state = ws.messages("progress_state")[-1]["data"]["nodes"]
        assert state == {"3": {"value": 1, "max": 1, "state": "finished", "node_id": "3",
                               "prompt_id": second, "display_node_id": "3",
                               "parent_node_id": None, "real_node_id": "3"}}
    entry = requests.get(f"{fake_server.url}/history/{second}", timeout=5).json()[second]
    assert entry["outputs"] == {"3": {"text": ["done", "(1, 8, 8, 3)"]}}
    assert entry["meta"]["3"]["node_id"] == "3"


def test_partial_cache_runs_only_what_changed(fake_server: FakeComfyUI) -> None:
    with WsClient(fake_server.ws_url()) as ws:
        run_prompt(fake_server.url, ws, chain(text="a"))
        mark = len(ws.snapshot())
        run_prompt(fake_server.url, ws, chain(text="b"))
        assert ws.wait_for_type("execution_cached", start=mark)["data"]["nodes"] == ["1", "2"]
        executing = [m["data"]["node"] for m in ws.messages("executing")[-2:]]
        assert executing == ["3", None]


def test_cached_output_node_without_ui_gets_executed_null(fake_server: FakeComfyUI) -> None:
    class Sink:
        @classmethod
        def INPUT_TYPES(cls) -> Dict[str, Any]:
            return {"required": {"value": ("INT", {"default": 1})}}
        RETURN_TYPES = ()
        FUNCTION = "go"
        OUTPUT_NODE = True

        def go(self, value: int) -> Tuple[()]:
            return ()

    fake_server.register_node("Sink", Sink)
    prompt = {"1": {"class_type": "Sink", "inputs": {"value": 3}}}
    with WsClient(fake_server.ws_url()) as ws:
        run_prompt(fake_server.url, ws, prompt)
        assert ws.messages("executed") == []
        run_prompt(fake_server.url, ws, prompt)
        assert ws.messages("executed")[0]["data"]["output"] is None


def test_free_memory_drops_the_cache(fake_server: FakeComfyUI) -> None:
    with WsClient(fake_server.ws_url()) as ws:
        run_prompt(fake_server.url, ws, chain())
        r = requests.post(f"{fake_server.url}/free", json={"free_memory": True}, timeout=5)
        assert r.status_code == 200 and r.content == b""
        fake_server.wait_for_idle()
        mark = len(ws.snapshot())
        run_prompt(fake_server.url, ws, chain())
        assert ws.wait_for_type("execution_cached", start=mark)["data"]["nodes"] == []


def test_is_changed_nan_is_never_cached(fake_server: FakeComfyUI) -> None:
    calls: List[int] = []

    class Always:
        @classmethod
        def INPUT_TYPES(cls) -> Dict[str, Any]:
            return {"required": {}}
        RETURN_TYPES = ()
        FUNCTION = "go"
        OUTPUT_NODE = True

        @classmethod
        def IS_CHANGED(cls) -> float:
            return float("nan")

        def go(self) -> Dict[str, Any]:
            calls.append(1)
            return {"ui": {"n": [len(calls)]}}

    fake_server.register_node("Always", Always)
    with WsClient(fake_server.ws_url()) as ws:
        for _ in range(2):
            run_prompt(fake_server.url, ws, {"1": {"class_type": "Always", "inputs": {}}})
    assert len(calls) == 2


# -------------------------------------------------------------- order / priority
def test_priority_number_and_front(fake_server: FakeComfyUI) -> None:
    fake_server.pause()
    with WsClient(fake_server.ws_url()) as ws:
        ids = {}
        for label, extra in (("late", {"number": 50}), ("normal", {}), ("front", {"front": True}),
                             ("early", {"number": -100})):
            r = post_prompt(fake_server.url, chain(text=label), ws.sid, **extra)
            ids[r.json()["prompt_id"]] = label
            if label == "late":
                assert r.json()["number"] == 50.0
        pending = requests.get(f"{fake_server.url}/queue", timeout=5).json()["queue_pending"]
        numbers = sorted((item[0], ids[item[1]]) for item in pending)
        assert [label for _, label in numbers] == ["early", "front", "normal", "late"]
        fake_server.resume()
        barrier(fake_server, ws)
        starts = [ids[m["data"]["prompt_id"]] for m in ws.messages("execution_start")]
        assert starts == ["early", "front", "normal", "late"]


def test_counter_advances_even_on_rejected_prompts(fake_server: FakeComfyUI) -> None:
    first = post_prompt(fake_server.url, chain()).json()["number"]
    bad = post_prompt(fake_server.url, {"1": {"class_type": "Nope", "inputs": {}}})
    assert bad.status_code == 400
    requests.post(f"{fake_server.url}/prompt", json={}, timeout=5)  # no_prompt, still counted
    third = post_prompt(fake_server.url, chain())
    assert third.json()["number"] == first + 3
    front = post_prompt(fake_server.url, chain(), front=True)
    assert front.json()["number"] == -(first + 4)


def test_outputs_and_their_producers_run_first(fake_server: FakeComfyUI) -> None:
    prompt = {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ProbeText", "inputs": {"text": "a", "image": ["1", 0]}},
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "4": {"class_type": "ProbeText", "inputs": {"text": "b", "image": ["3", 0]}},
    }
    with WsClient(fake_server.ws_url()) as ws:
        run_prompt(fake_server.url, ws, prompt)
        order = [m["data"]["node"] for m in ws.messages("executing")]
    assert order == ["1", "2", "3", "4", None]


# ---------------------------------------------------------------------- interrupt
def test_interrupt_by_prompt_id_only_hits_the_running_prompt(fake_server: FakeComfyUI) -> None:
    with WsClient(fake_server.ws_url()) as ws:
        running = post_prompt(fake_server.url, chain(seconds=30), ws.sid).json()["prompt_id"]
        pending = post_prompt(fake_server.url, chain(seconds=0, seed=2), ws.sid).json()["prompt_id"]
        fake_server.wait_for_running(running)
        ws.wait_for_type("executing", lambda m: m["data"]["node"] == "2")
        r = requests.post(f"{fake_server.url}/interrupt", json={"prompt_id": pending}, timeout=5)
        assert r.status_code == 200
        r = requests.post(f"{fake_server.url}/interrupt", json={"prompt_id": running}, timeout=5)
        assert r.status_code == 200 and r.content == b""
        interrupted = ws.wait_for_type("execution_interrupted")["data"]
        assert interrupted["prompt_id"] == running
        assert interrupted["node_id"] == "2" and interrupted["node_type"] == "ProbeSleep"
        assert interrupted["executed"] == ["1"]
        ws.wait_done(pending)
    history = requests.get(f"{fake_server.url}/history", timeout=5).json()
    assert history[running]["status"]["status_str"] == "error"
    assert history[running]["status"]["completed"] is False
    assert history[running]["status"]["messages"][-1][0] == "execution_interrupted"
    assert history[pending]["status"]["status_str"] == "success"


def test_global_interrupt_with_empty_body_and_idle_interrupt(fake_server: FakeComfyUI) -> None:
    r = requests.post(f"{fake_server.url}/interrupt", timeout=5)  # idle: no effect later
    assert r.status_code == 200
    with WsClient(fake_server.ws_url()) as ws:
        prompt_id = post_prompt(fake_server.url, chain(seconds=30), ws.sid).json()["prompt_id"]
        ws.wait_for_type("executing", lambda m: m["data"]["node"] == "2")
        requests.post(f"{fake_server.url}/interrupt", data=b"", timeout=5)
        ws.wait_done(prompt_id)
        assert ws.messages("execution_interrupted")


def test_interrupt_without_client_id_is_broadcast(fake_server: FakeComfyUI) -> None:
    with WsClient(fake_server.ws_url()) as observer:
        prompt_id = post_prompt(fake_server.url, chain(seconds=30)).json()["prompt_id"]
        fake_server.wait_for_running(prompt_id)
        observer.wait_for_type("progress_state",
                               lambda m: m["data"]["nodes"].get("2", {}).get("state") == "running")
        fake_server.interrupt()
        assert observer.wait_for_type("execution_interrupted")["data"]["prompt_id"] == prompt_id
        barrier(fake_server, observer)
        assert "executing" not in observer.types()
        assert "execution_start" not in observer.types()


def test_progress_update_is_an_interruption_point(fake_server: FakeComfyUI) -> None:
    class Spin:
        @classmethod
        def INPUT_TYPES(cls) -> Dict[str, Any]:
            return {"required": {}}
        RETURN_TYPES = ()
        FUNCTION = "go"
        OUTPUT_NODE = True

        def go(self) -> Tuple[()]:
            bar = ProgressBar(1000)
            ctx = current_context()
            for i in range(1000):
                if i == 3:
                    fake_server.interrupt(ctx.prompt_id)
                bar.update(1)
            return ()

    fake_server.register_node("Spin", Spin)
    with WsClient(fake_server.ws_url()) as ws:
        run_prompt(fake_server.url, ws, {"1": {"class_type": "Spin", "inputs": {}}})
        assert [m["data"]["value"] for m in ws.messages("progress")] == [1, 2, 3]
        assert ws.messages("execution_interrupted")


# ------------------------------------------------------------------ queue delete
def test_delete_and_clear_pending(fake_server: FakeComfyUI) -> None:
    fake_server.pause()
    with WsClient(fake_server.ws_url()) as ws:
        a = post_prompt(fake_server.url, chain(seed=1), ws.sid).json()["prompt_id"]
        b = post_prompt(fake_server.url, chain(seed=2), ws.sid).json()["prompt_id"]
        ws.wait_count(3)
        mark = len(ws.snapshot())
        r = requests.post(f"{fake_server.url}/queue", json={"delete": [a, "unknown"]}, timeout=5)
        assert r.status_code == 200 and r.content == b""
        ws.wait_count(mark + 1)
        requests.post(f"{fake_server.url}/queue", json={"delete": [b]}, timeout=5)
        ws.wait_count(mark + 3)  # removing the last pending item: two status messages
        requests.post(f"{fake_server.url}/queue", json={"clear": True}, timeout=5)
        ws.wait_count(mark + 4)
        barrier(fake_server, ws)
        remaining = [m["data"]["status"]["exec_info"]["queue_remaining"]
                     for m in ws.messages("status")[-4:]]
        assert remaining == [1, 0, 0, 0]
    assert requests.get(f"{fake_server.url}/queue", timeout=5).json() == \
        {"queue_running": [], "queue_pending": []}
    fake_server.resume()


def test_delete_ignores_the_running_prompt(fake_server: FakeComfyUI) -> None:
    with WsClient(fake_server.ws_url()) as ws:
        prompt_id = post_prompt(fake_server.url, chain(seconds=30), ws.sid).json()["prompt_id"]
        fake_server.wait_for_running(prompt_id)
        requests.post(f"{fake_server.url}/queue", json={"delete": [prompt_id]}, timeout=5)
        running, pending = fake_server.queue_state()
        assert [item[1] for item in running] == [prompt_id] and pending == []
        fake_server.interrupt()
        ws.wait_done(prompt_id)


# -------------------------------------------------------------------------- errors
class CustomError(Exception):
    pass


def test_execution_error_fields(fake_server: FakeComfyUI) -> None:
    class Boom:
        @classmethod
        def INPUT_TYPES(cls) -> Dict[str, Any]:
            return {"required": {"image": ("IMAGE",), "word": ("STRING", {"default": "x"})}}
        RETURN_TYPES = ()
        FUNCTION = "go"
        OUTPUT_NODE = True

        def go(self, image: Any, word: str) -> Tuple[()]:
            raise CustomError(f"bad {word}")

    fake_server.register_node("Boom", Boom)
    prompt = {"1": chain()["1"], "2": {"class_type": "Boom",
                                        "inputs": {"image": ["1", 0], "word": "w"}}}
    with WsClient(fake_server.ws_url()) as ws:
        prompt_id = run_prompt(fake_server.url, ws, prompt)
        error = ws.wait_for_type("execution_error")["data"]
        assert ws.types()[-3:] == ["execution_error", "status", "executing"]
    assert error["exception_message"] == "bad w\n"
    assert error["exception_type"] == f"{__name__}.CustomError"
    assert error["node_id"] == "2" and error["node_type"] == "Boom"
    assert error["executed"] == ["1"]
    assert error["current_outputs"] == ["1", "2"]
    assert error["current_inputs"]["word"] == ["w"]
    assert isinstance(error["current_inputs"]["image"][0], str)
    assert error["traceback"] and all(isinstance(line, str) for line in error["traceback"])
    assert "raise CustomError" in error["traceback"][-1]
    assert list(error)[-1] == "timestamp"
    entry = requests.get(f"{fake_server.url}/history/{prompt_id}", timeout=5).json()[prompt_id]
    assert entry["outputs"] == {} and entry["meta"] == {}
    assert entry["status"]["status_str"] == "error"
    assert [m[0] for m in entry["status"]["messages"]] == \
        ["execution_start", "execution_cached", "execution_error"]


def test_builtin_exception_type_is_bare(fake_server: FakeComfyUI) -> None:
    prompt = {"1": chain()["1"], "2": {"class_type": "ProbeFail",
                                        "inputs": {"image": ["1", 0], "message": "m"}},
              "3": {"class_type": "ProbeText", "inputs": {"text": "t", "image": ["2", 0]}}}
    with WsClient(fake_server.ws_url()) as ws:
        run_prompt(fake_server.url, ws, prompt)
        assert ws.messages("execution_error")[0]["data"]["exception_type"] == "RuntimeError"


# --------------------------------------------------------------- routing/previews
def test_previews_type4_only_to_flagged_client(fake_server: FakeComfyUI) -> None:
    with WsClient(fake_server.ws_url(), feature_flags={"supports_preview_metadata": True}) as ws:
        flags = ws.wait_for_type("feature_flags")["data"]
        assert flags == {"supports_preview_metadata": True, "max_upload_size": 104857600}
        run_prompt(fake_server.url, ws, progress_prompt("PNG"))
        binaries = [f[1] for f in ws.snapshot() if f[0] == "binary"]
    assert [binary_type(b) for b in binaries] == [4, 4]
    size = struct.unpack(">I", binaries[0][4:8])[0]
    meta = json.loads(binaries[0][8:8 + size])
    assert meta["image_type"] == "image/png" and meta["node_id"] == "2"
    assert binaries[0][8 + size:8 + size + 8] == b"\x89PNG\r\n\x1a\n"
    seq = [t for t in ws.types() if t in ("progress_state", "bin4", "progress")]
    first = seq.index("bin4")
    assert seq[first - 1:first + 2] == ["progress_state", "bin4", "progress"]


def test_previews_type1_for_legacy_and_broadcast_without_client(fake_server: FakeComfyUI) -> None:
    flags = {"supports_preview_metadata": True}
    with WsClient(fake_server.ws_url()) as legacy, \
            WsClient(fake_server.ws_url(), feature_flags=flags) as flagged:
        run_prompt(fake_server.url, legacy, progress_prompt("JPEG"))
        assert [t for t in legacy.types() if t.startswith("bin")] == ["bin1", "bin1"]
        assert not [t for t in flagged.types() if t.startswith("bin")]
        frame = next(f[1] for f in legacy.snapshot() if f[0] == "binary")
        assert frame[4:8] == b"\x00\x00\x00\x01" and frame[8:10] == b"\xff\xd8"
        # no client id: type 1 (never type 4) broadcast to every socket
        post_prompt(fake_server.url, progress_prompt("JPEG", steps=3))
        barrier(fake_server, legacy, flagged)
        assert [t for t in flagged.types() if t.startswith("bin")] == ["bin1"] * 3


def test_preview_is_fitted_into_preview_size(fake_server: FakeComfyUI) -> None:
    import io

    from PIL import Image

    with WsClient(fake_server.ws_url()) as ws:
        run_prompt(fake_server.url, ws, progress_prompt("JPEG", steps=1))
        frame = next(f[1] for f in ws.snapshot() if f[0] == "binary")
    with Image.open(io.BytesIO(frame[8:])) as img:
        assert img.size == (512, 256)  # 16×8 fitted into 512² (upscaled, as the real server)


def test_only_the_first_text_message_negotiates(fake_server: FakeComfyUI) -> None:
    with WsClient(fake_server.ws_url()) as ws:
        ws.send_text("not json")  # does not count as the first message
        ws.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
        ws.wait_for_type("feature_flags")
        ws.send_json({"type": "feature_flags", "data": {}})  # later ones are ignored
        run_prompt(fake_server.url, ws, progress_prompt("JPEG", steps=1))
        assert len(ws.messages("feature_flags")) == 1
        assert "bin4" in ws.types()
    with WsClient(fake_server.ws_url()) as ws:
        ws.send_json({"type": "hello"})  # a JSON first message of another type closes it
        ws.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
        run_prompt(fake_server.url, ws, progress_prompt("JPEG", steps=1, seed=8))
        assert ws.messages("feature_flags") == [] and "bin1" in ws.types()


def test_other_clients_see_only_status(fake_server: FakeComfyUI) -> None:
    with WsClient(fake_server.ws_url()) as mine, WsClient(fake_server.ws_url()) as other:
        run_prompt(fake_server.url, mine, progress_prompt("JPEG"))
        barrier(fake_server, mine, other)
        assert set(other.types()) == {"status"}


def test_node_messages_text_json_and_image_frames(fake_server: FakeComfyUI) -> None:
    from PIL import Image

    class Talker:
        @classmethod
        def INPUT_TYPES(cls) -> Dict[str, Any]:
            return {"required": {}, "hidden": {"uid": "UNIQUE_ID", "prompt": "PROMPT",
                                               "info": "EXTRA_PNGINFO"}}
        RETURN_TYPES = ()
        FUNCTION = "go"
        OUTPUT_NODE = True

        def go(self, uid: str, prompt: Dict[str, Any], info: Any) -> Dict[str, Any]:
            ctx = current_context()
            ctx.send_text(f"hello {uid}")
            classes = sorted(n["class_type"] for n in prompt.values())
            ctx.send_json("talker.done", {"classes": classes})
            ctx.send_image_frame("PNG", Image.new("RGB", (3, 2)))
            return {"ui": {"info": [info]}}

    fake_server.register_node("Talker", Talker)
    with WsClient(fake_server.ws_url()) as ws, WsClient(fake_server.ws_url()) as other:
        run_prompt(fake_server.url, ws, {"9": {"class_type": "Talker", "inputs": {}}},
                   extra_data={"extra_pnginfo": {"workflow": {"id": "wf"}}})
        text = next(f[1] for f in ws.snapshot() if f[0] == "binary" and binary_type(f[1]) == 3)
        assert text == b"\x00\x00\x00\x03\x00\x00\x00\x019" + b"hello 9"
        assert ws.messages("talker.done")[0]["data"] == {"classes": ["Talker"]}
        image = next(f[1] for f in ws.snapshot() if f[0] == "binary" and binary_type(f[1]) == 1)
        assert image[4:8] == b"\x00\x00\x00\x02"
        output = ws.messages("executed")[0]["data"]["output"]
        assert output == {"info": [{"workflow": {"id": "wf"}}]}
        barrier(fake_server, ws, other)
        # text frames and send_json without sid are broadcast; the image frame is not
        assert "bin3" in other.types() and "talker.done" in other.types()
        assert "bin1" not in other.types()


# ------------------------------------------------------------ reconnect semantics
def test_reconnect_as_running_client_gets_executing(fake_server: FakeComfyUI) -> None:
    ws = WsClient(fake_server.ws_url())
    prompt_id = post_prompt(fake_server.url, chain(seconds=30), ws.sid).json()["prompt_id"]
    ws.wait_for_type("executing", lambda m: m["data"]["node"] == "2")
    ws.close()
    # the old handler must be gone first, or it would unregister the new socket
    fake_server.wait_until(lambda: ws.sid not in fake_server.client_ids())
    with WsClient(fake_server.ws_url(), client_id=ws.sid) as again:
        again.wait_count(2)
        assert again.snapshot()[1] == ("text", {"type": "executing", "data": {"node": "2"}})
        fake_server.interrupt()
        again.wait_done(prompt_id)


def test_same_id_replacement_race(fake_server: FakeComfyUI) -> None:
    """The replaced socket gets nothing; when it closes, it unregisters the new one."""
    old = WsClient(fake_server.ws_url(), client_id="same")
    new = WsClient(fake_server.ws_url(), client_id="same")
    fake_server.send_unknown_message("x.ping", {"n": 1})
    new.wait_for_type("x.ping")
    assert old.messages("x.ping") == []
    old.close()
    fake_server.wait_until(lambda: "same" not in fake_server.client_ids())
    fake_server.send_unknown_message("x.ping", {"n": 2})
    fake_server.wait_for_idle()  # processed: no socket is registered as "same"
    assert [m["data"]["n"] for m in new.messages("x.ping")] == [1]
    assert not new.closed
    new.close()


# ------------------------------------------------------------------ history timing
def test_history_is_written_before_executing_null(fake_server: FakeComfyUI) -> None:
    seen: List[Optional[Dict[str, Any]]] = []
    with WsClient(fake_server.ws_url()) as ws:
        prompt_id = post_prompt(fake_server.url, chain(), ws.sid).json()["prompt_id"]
        ws.wait_done(prompt_id)
        seen.append(requests.get(f"{fake_server.url}/history/{prompt_id}", timeout=5).json())
        types = ws.types()
    assert prompt_id in seen[0]
    assert types[-3:] == ["execution_success", "status", "executing"]


def test_prompt_without_client_id_has_complete_history(fake_server: FakeComfyUI) -> None:
    prompt_id = post_prompt(fake_server.url, chain()).json()["prompt_id"]
    fake_server.wait_for_idle()
    entry = requests.get(f"{fake_server.url}/history/{prompt_id}", timeout=5).json()[prompt_id]
    assert [m[0] for m in entry["status"]["messages"]] == \
        ["execution_start", "execution_cached", "execution_success"]
    assert entry["prompt"][3] == {}


# ------------------------------------------------------------------ custom nodes
def test_custom_node_with_progress_and_nodes_option() -> None:
    class Slow:
        @classmethod
        def INPUT_TYPES(cls) -> Dict[str, Any]:
            return {"required": {"steps": ("INT", {"default": 3, "min": 1, "max": 100})}}
        RETURN_TYPES = ()
        FUNCTION = "go"
        OUTPUT_NODE = True

        def go(self, steps: int) -> Dict[str, Any]:
            bar = ProgressBar(steps)
            for i in range(steps):
                bar.update_absolute(i + 1)
            return {"ui": {"text": [f"{steps} steps"]}}

    with FakeComfyUI(nodes={"Slow": Slow}) as server, WsClient(server.ws_url()) as ws:
        info = requests.get(f"{server.url}/object_info/Slow", timeout=5).json()
        assert info["Slow"]["output_node"] is True
        run_prompt(server.url, ws, {"1": {"class_type": "Slow", "inputs": {"steps": 3}}})
        assert [m["data"]["value"] for m in ws.messages("progress")] == [1, 2, 3]
        assert ws.messages("executed")[0]["data"]["output"] == {"text": ["3 steps"]}


def test_node_interrupted_raised_by_a_node_counts_as_interrupt(fake_server: FakeComfyUI) -> None:
    class Quit:
        @classmethod
        def INPUT_TYPES(cls) -> Dict[str, Any]:
            return {"required": {}}
        RETURN_TYPES = ()
        FUNCTION = "go"
        OUTPUT_NODE = True

        def go(self) -> Tuple[()]:
            raise NodeInterrupted()

    fake_server.register_node("Quit", Quit)
    with WsClient(fake_server.ws_url()) as ws:
        run_prompt(fake_server.url, ws, {"1": {"class_type": "Quit", "inputs": {}}})
        assert ws.messages("execution_interrupted")[0]["data"]["node_type"] == "Quit"


@pytest.mark.skipif(not DEFAULT_WORKFLOW.is_file(), reason="default workflow file missing")
def test_default_text_to_image_workflow_runs_and_image_is_served(fake_server: FakeComfyUI) -> None:
    workflow = json.loads(DEFAULT_WORKFLOW.read_text())
    with WsClient(fake_server.ws_url()) as ws:
        prompt_id = run_prompt(fake_server.url, ws, workflow, timeout=30)
        assert "execution_error" not in ws.types()
    entry = requests.get(f"{fake_server.url}/history/{prompt_id}", timeout=5).json()[prompt_id]
    images = [img for out in entry["outputs"].values() for img in out.get("images", [])]
    assert images
    r = requests.get(f"{fake_server.url}/view", params=images[0], timeout=5)
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert r.headers["Content-Type"] == "image/png"
