"""FakeComfyUI's HTTP routes: status codes, content types and bodies as the real server."""

from __future__ import annotations

import io
import json
from typing import Any, Dict, Tuple

import pytest
import requests
from PIL import Image

from comfysync.testing import FakeComfyUI

from .driver import WsClient, post_prompt, run_prompt

INTERNAL_500 = "500 Internal Server Error\n\nServer got itself in trouble"


def png(color: Tuple[int, ...] = (10, 20, 30, 255), size: Tuple[int, int] = (4, 4)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", size, color).save(buf, format="PNG")
    return buf.getvalue()


def upload(server: FakeComfyUI, name: str, content: bytes, route: str = "image",
           **fields: str) -> requests.Response:
    return requests.post(f"{server.url}/upload/{route}",
                         files={"image": (name, content, "image/png")}, data=fields, timeout=5)


def simple_prompt(text: str = "t") -> Dict[str, Any]:
    return {"1": {"class_type": "ProbeText", "inputs": {"text": text}}}


# --------------------------------------------------------------------- basics
def test_api_twins_and_internal_only(fake_server: FakeComfyUI) -> None:
    for path in ("/queue", "/prompt", "/history", "/features", "/object_info/EmptyImage"):
        plain = requests.get(fake_server.url + path, timeout=5)
        twin = requests.get(fake_server.url + "/api" + path, timeout=5)
        assert plain.status_code == twin.status_code == 200
        assert plain.json() == twin.json()
    assert requests.get(f"{fake_server.url}/api/internal/logs", timeout=5).status_code == 404
    assert requests.get(f"{fake_server.url}/nothing/here", timeout=5).status_code == 404
    assert requests.delete(f"{fake_server.url}/prompt", timeout=5).status_code == 405
    assert requests.head(f"{fake_server.url}/queue", timeout=5).status_code == 200
    index = requests.get(f"{fake_server.url}/", timeout=5)
    assert index.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("path", ["/prompt", "/queue", "/history", "/free", "/settings"])
def test_malformed_json_bodies_are_plain_500(fake_server: FakeComfyUI, path: str) -> None:
    r = requests.post(fake_server.url + path, data=b"", timeout=5)
    assert r.status_code == 500
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.text == INTERNAL_500


def test_max_upload_size_gives_413() -> None:
    with FakeComfyUI(max_upload_size=1000) as server:
        r = upload(server, "big.png", b"x" * 5000)
        assert r.status_code == 413
        assert r.headers["Content-Type"].startswith("text/plain")
        # aiohttp writes this text; versions before 3.14 append ", actual body size N"
        assert r.text.startswith("Maximum request body size 1000 exceeded")
        assert requests.get(f"{server.url}/features", timeout=5).json()["max_upload_size"] == 1000


def test_prompt_responses(fake_server: FakeComfyUI) -> None:
    ok = post_prompt(fake_server.url, simple_prompt(), prompt_id="my-id", number="7")
    assert ok.json() == {"prompt_id": "my-id", "number": 7.0, "node_errors": {}}
    missing = requests.post(f"{fake_server.url}/prompt", json={"client_id": "x"}, timeout=5)
    assert missing.status_code == 400
    assert missing.json()["error"]["type"] == "no_prompt"
    unknown = post_prompt(fake_server.url, {"1": {"class_type": "NoSuchNode", "inputs": {}}})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["type"] == "invalid_prompt"
    ui_format = post_prompt(fake_server.url, {"last_node_id": 3, "nodes": [], "version": 0.4})
    assert ui_format.status_code == 500 and ui_format.text == INTERNAL_500
    fake_server.wait_for_idle()
    assert "got prompt" in requests.get(f"{fake_server.url}/internal/logs", timeout=5).json()


def test_dropped_output_is_reported_in_the_200(fake_server: FakeComfyUI) -> None:
    prompt = {**simple_prompt(), "2": {"class_type": "ProbeText", "inputs": {}}}
    r = post_prompt(fake_server.url, prompt)
    assert r.status_code == 200
    assert r.json()["node_errors"]["2"]["errors"][0]["type"] == "required_input_missing"
    fake_server.wait_for_idle()
    entry = requests.get(f"{fake_server.url}/history/{r.json()['prompt_id']}", timeout=5).json()
    assert list(entry.values())[0]["prompt"][4] == ["1"]


def test_get_prompt_and_queue_layout(fake_server: FakeComfyUI) -> None:
    fake_server.pause()
    body = {"prompt": simple_prompt(), "client_id": "c1",
            "extra_data": {"extra_pnginfo": {"workflow": {"id": "w"}}}}
    prompt_id = requests.post(f"{fake_server.url}/prompt", json=body, timeout=5).json()["prompt_id"]
    assert requests.get(f"{fake_server.url}/prompt", timeout=5).json() == \
        {"exec_info": {"queue_remaining": 1}}
    queue = requests.get(f"{fake_server.url}/queue", timeout=5).json()
    assert queue["queue_running"] == []
    number, pid, prompt, extra, outputs = queue["queue_pending"][0]
    assert (pid, outputs) == (prompt_id, ["1"])
    assert extra == {"extra_pnginfo": {"workflow": {"id": "w"}}, "client_id": "c1"}
    assert prompt == simple_prompt()
    fake_server.resume()
    fake_server.wait_for_idle()


def test_history_paging_and_deletion(fake_server: FakeComfyUI) -> None:
    with WsClient(fake_server.ws_url()) as ws:
        ids = [run_prompt(fake_server.url, ws, simple_prompt(str(i))) for i in range(4)]
    url = f"{fake_server.url}/history"
    assert list(requests.get(url, timeout=5).json()) == ids
    assert list(requests.get(url, params={"max_items": 2}, timeout=5).json()) == ids[2:]
    assert list(requests.get(url, params={"offset": 1}, timeout=5).json()) == ids[1:]
    assert list(requests.get(url, params={"offset": 1, "max_items": 2},
                             timeout=5).json()) == ids[1:3]
    assert requests.get(url, params={"max_items": "x"}, timeout=5).status_code == 500
    assert requests.get(f"{url}/unknown", timeout=5).json() == {}
    r = requests.post(url, json={"delete": [ids[0], "unknown"]}, timeout=5)
    assert r.status_code == 200 and r.content == b""
    assert list(requests.get(url, timeout=5).json()) == ids[1:]
    requests.post(url, json={"clear": True}, timeout=5)
    assert requests.get(url, timeout=5).json() == {}


def test_history_entry_strips_sensitive_keys_but_queue_shows_them(fake_server: FakeComfyUI) -> None:
    fake_server.pause()
    body = {"prompt": simple_prompt(), "extra_data": {"api_key_comfy_org": "k"}}
    prompt_id = requests.post(f"{fake_server.url}/prompt", json=body, timeout=5).json()["prompt_id"]
    assert fake_server.queue_state()[1][0][3] == {"api_key_comfy_org": "k"}
    fake_server.resume()
    fake_server.wait_for_idle()
    entry = fake_server.history()[prompt_id]
    assert entry["prompt"][3] == {}


# ----------------------------------------------------------------------- files
def test_view_checks(fake_server: FakeComfyUI) -> None:
    (fake_server.dirs.output / "sub").mkdir()
    (fake_server.dirs.output / "sub" / "a.png").write_bytes(png())
    (fake_server.dirs.input / "page.html").write_text("<html></html>")
    view = f"{fake_server.url}/view"

    def get(**params: str) -> requests.Response:
        return requests.get(view, params=params, timeout=5)

    ok = get(filename="a.png", subfolder="sub")
    assert ok.status_code == 200 and ok.headers["Content-Type"] == "image/png"
    assert ok.headers["Content-Disposition"] == 'filename="a.png"'
    assert get(filename="a.png [output]", subfolder="sub", type="input").status_code == 200
    assert get().status_code == 404
    assert get(filename=" [output]").status_code == 400
    assert get(filename="../x.png").status_code == 400
    assert get(filename="/etc/passwd").status_code == 400
    assert get(filename="a.png", type="models").status_code == 400
    assert get(filename="a.png", subfolder="../../").status_code == 403
    assert get(filename="missing.png").status_code == 404
    assert get(filename="sub", type="output").status_code == 404  # a directory
    assert get(filename="sub/a.png").status_code == 404  # basename only: not in the root
    html = get(filename="page.html", type="input")
    assert html.headers["Content-Type"] == "application/octet-stream"


def test_view_channels_and_previews(fake_server: FakeComfyUI) -> None:
    (fake_server.dirs.output / "c.png").write_bytes(png((200, 100, 50, 128)))
    view = f"{fake_server.url}/view"
    rgb = requests.get(view, params={"filename": "c.png", "channel": "rgb"}, timeout=5)
    with Image.open(io.BytesIO(rgb.content)) as img:
        assert img.mode == "RGB" and img.getpixel((0, 0)) == (200, 100, 50)
    alpha = requests.get(view, params={"filename": "c.png", "channel": "a"}, timeout=5)
    with Image.open(io.BytesIO(alpha.content)) as img:
        assert img.getpixel((0, 0)) == (0, 0, 0, 128)
    jpeg = requests.get(view, params={"filename": "c.png", "preview": "jpeg;50",
                                      "channel": "rgb"}, timeout=5)
    assert jpeg.headers["Content-Type"] == "image/jpeg"
    webp = requests.get(view, params={"filename": "c.png", "preview": "jpeg"}, timeout=5)
    assert webp.headers["Content-Type"] == "image/webp"  # alpha channel forces webp
    ranged = requests.get(view, params={"filename": "c.png"}, headers={"Range": "bytes=0-3"},
                          timeout=5)
    assert ranged.status_code == 206 and ranged.content == b"\x89PNG"


def test_upload_naming_rules(fake_server: FakeComfyUI) -> None:
    first = upload(fake_server, "pic.png", png((1, 1, 1, 255)))
    assert first.json() == {"name": "pic.png", "subfolder": "", "type": "input"}
    same = upload(fake_server, "pic.png", png((1, 1, 1, 255)))
    assert same.json()["name"] == "pic.png"
    other = upload(fake_server, "pic.png", png((2, 2, 2, 255)))
    assert other.json()["name"] == "pic (1).png"
    again = upload(fake_server, "pic.png", png((2, 2, 2, 255)))
    assert again.json()["name"] == "pic (1).png"  # identical to "pic (1).png": reused
    third = upload(fake_server, "pic.png", png((3, 3, 3, 255)))
    assert third.json()["name"] == "pic (2).png"
    overwrite = upload(fake_server, "pic.png", png((4, 4, 4, 255)), overwrite="true")
    assert overwrite.json()["name"] == "pic.png"
    with Image.open(fake_server.dirs.input / "pic.png") as img:
        assert img.getpixel((0, 0)) == (4, 4, 4, 255)
    temp = upload(fake_server, "t.png", png(), type="temp", subfolder="a/b")
    assert temp.json() == {"name": "t.png", "subfolder": "a/b", "type": "temp"}
    assert (fake_server.dirs.temp / "a" / "b" / "t.png").is_file()
    assert upload(fake_server, "x.png", png(), type="bogus").status_code == 500
    assert upload(fake_server, "x.png", png(), subfolder="../..").status_code == 400
    no_image = requests.post(f"{fake_server.url}/upload/image", data={"type": "input"}, timeout=5)
    assert no_image.status_code == 400


def test_mask_quirks(fake_server: FakeComfyUI) -> None:
    upload(fake_server, "orig.png", png((9, 9, 9, 255)))
    no_ref = upload(fake_server, "m.png", png((0, 0, 0, 10)), route="mask")
    assert no_ref.status_code == 500
    bad_ref = upload(fake_server, "m2.png", png((0, 0, 0, 10)), route="mask",
                     original_ref=json.dumps({"filename": "../x.png"}))
    assert bad_ref.status_code == 200 and bad_ref.json()["name"] == "m2.png"
    assert not (fake_server.dirs.input / "m2.png").exists()
    good = upload(fake_server, "m3.png", png((0, 0, 0, 10)), route="mask",
                  original_ref=json.dumps({"filename": "orig.png [input]"}))
    assert good.status_code == 200
    with Image.open(fake_server.dirs.input / "m3.png") as img:
        assert img.getpixel((0, 0)) == (9, 9, 9, 10)


# ----------------------------------------------------------- users / settings / data
def test_users_and_settings(fake_server: FakeComfyUI) -> None:
    url = fake_server.url
    users = requests.get(f"{url}/users", timeout=5).json()
    assert users == {"storage": "server", "migrated": False}
    user_id = requests.post(f"{url}/users", json={"username": "Al ice"}, timeout=5).json()
    assert user_id.startswith("Al-ice_")
    dup = requests.post(f"{url}/users", json={"username": "Al ice"}, timeout=5)
    assert dup.status_code == 400 and dup.json() == {"error": "Duplicate username."}
    assert requests.post(f"{url}/users", json={"username": " "}, timeout=5).status_code == 500
    assert requests.get(f"{url}/settings", timeout=5).json() == {}
    assert requests.post(f"{url}/settings", json={"a": 1, "b": 2}, timeout=5).content == b""
    requests.post(f"{url}/settings", json={"b": 3}, timeout=5)
    requests.post(f"{url}/settings/c.d", json=[1], timeout=5)
    assert requests.get(f"{url}/settings", timeout=5).json() == {"a": 1, "b": 3, "c.d": [1]}
    assert requests.get(f"{url}/settings/c.d", timeout=5).json() == [1]
    assert requests.get(f"{url}/settings/none", timeout=5).json() is None


def test_userdata(fake_server: FakeComfyUI) -> None:
    url = f"{fake_server.url}/userdata"
    assert requests.get(url, timeout=5).status_code == 400
    assert requests.get(url, params={"dir": "../.."}, timeout=5).status_code == 403
    stored = requests.post(f"{url}/wf%2Fa.json", data=b"{}", timeout=5)
    assert stored.json() == "wf/a.json"
    requests.post(f"{url}/wf%2Fsub%2Fb.json", data=b"[]", timeout=5)
    conflict = requests.post(f"{url}/wf%2Fa.json", params={"overwrite": "false"}, data=b"1",
                             timeout=5)
    assert conflict.status_code == 409 and conflict.text == "File already exists"
    assert requests.get(url, params={"dir": "wf"}, timeout=5).json() == ["a.json"]
    deep = requests.get(url, params={"dir": "wf", "recurse": "true", "split": "true"}, timeout=5)
    assert sorted(deep.json()) == [["a.json", "a.json"], ["sub/b.json", "sub", "b.json"]]
    info = requests.get(url, params={"dir": "wf", "full_info": "true"}, timeout=5).json()
    assert info[0]["path"] == "a.json" and info[0]["size"] == 2
    got = requests.get(f"{url}/wf%2Fa.json", timeout=5)
    assert got.content == b"{}" and got.headers["Content-Type"] == "application/json"
    assert requests.get(f"{url}/..%2F..%2Fx", timeout=5).status_code == 403
    assert requests.get(f"{url}/nope.json", timeout=5).status_code == 404
    moved = requests.post(f"{url}/wf%2Fa.json/move/wf%2Fc.json",
                          params={"full_info": "true"}, timeout=5)
    assert moved.json()["path"] == "wf/c.json"
    blocked = requests.post(f"{url}/wf%2Fc.json/move/wf%2Fsub%2Fb.json",
                            params={"overwrite": "false"}, timeout=5)
    assert blocked.status_code == 409
    v2 = requests.get(f"{fake_server.url}/v2/userdata", params={"path": "wf"}, timeout=5).json()
    assert [(e["name"], e["type"]) for e in v2] == [("sub", "directory"), ("b.json", "file"),
                                                    ("c.json", "file")]
    assert requests.delete(f"{url}/wf%2Fc.json", timeout=5).status_code == 204
    assert requests.delete(f"{url}/wf%2Fc.json", timeout=5).status_code == 404


# ------------------------------------------------------------------ discovery
def test_discovery_routes() -> None:
    options = {"models": {"loras": ["a.safetensors"], "embeddings": ["emb.pt"]},
               "feature_flags": {"extension": {"x": True}}}
    with FakeComfyUI(**options) as server:  # type: ignore[arg-type]
        url = server.url
        stats = requests.get(f"{url}/system_stats", timeout=5).json()
        assert stats["system"]["comfyui_version"] == "0.3.64" and len(stats["devices"]) == 1
        assert requests.get(f"{url}/features", timeout=5).json() == {
            "supports_preview_metadata": True, "max_upload_size": 104857600,
            "extension": {"x": True}}
        assert "checkpoints" in requests.get(f"{url}/models", timeout=5).json()
        assert requests.get(f"{url}/models/loras", timeout=5).json() == ["a.safetensors"]
        assert requests.get(f"{url}/models/unet", timeout=5).status_code == 404
        assert requests.get(f"{url}/embeddings", timeout=5).json() == ["emb"]
        assert requests.get(f"{url}/extensions", timeout=5).json() == []
        assert requests.get(f"{url}/workflow_templates", timeout=5).json() == {}
        assert requests.get(f"{url}/api/i18n", timeout=5).json() == {}
        info = requests.get(f"{url}/object_info", timeout=5).json()
        assert "KSampler" in info and "ProbeProgress" in info
        assert requests.get(f"{url}/object_info/Nope", timeout=5).json() == {}
        assert requests.get(f"{url}/view_metadata/loras",
                            params={"filename": "a.safetensors"}, timeout=5).status_code == 404
        assert "loras" in requests.get(f"{url}/internal/folder_paths", timeout=5).json()
        (server.dirs.output / "o.txt").write_text("x")
        assert requests.get(f"{url}/internal/files/output", timeout=5).json() == ["o.txt"]
        assert requests.get(f"{url}/internal/files/nope", timeout=5).status_code == 400
        raw = requests.get(f"{url}/internal/logs/raw", timeout=5).json()
        assert raw["size"] == {"cols": 80, "rows": 24}


def test_logs_subscription(fake_server: FakeComfyUI) -> None:
    with WsClient(fake_server.ws_url()) as ws:
        r = requests.patch(f"{fake_server.url}/internal/logs/subscribe",
                           json={"clientId": ws.sid, "enabled": True}, timeout=5)
        assert r.status_code == 200
        post_prompt(fake_server.url, simple_prompt())
        logs = ws.wait_for_type("logs", lambda m: "got prompt" in m["data"]["entries"][0]["m"])
        assert logs["data"]["size"] is None
        fake_server.wait_for_idle()


# ----------------------------------------------------------------- jobs API
def test_jobs_api_is_off_by_default(fake_server: FakeComfyUI) -> None:
    assert requests.get(f"{fake_server.url}/api/jobs", timeout=5).status_code == 404


@pytest.mark.comfy_server_options(jobs_api=True)
def test_jobs_api(comfy_server: FakeComfyUI) -> None:
    url = comfy_server.url
    bad_id = post_prompt(url, simple_prompt(), prompt_id="not-a-uuid")
    assert bad_id.status_code == 400 and bad_id.json()["error"]["type"] == "invalid_prompt_id"
    with WsClient(comfy_server.ws_url()) as ws:
        done = run_prompt(url, ws, simple_prompt("x"))
        comfy_server.pause()
        pending = post_prompt(url, simple_prompt("y"), ws.sid).json()["prompt_id"]
        jobs = requests.get(f"{url}/api/jobs", timeout=5).json()
        assert {j["id"]: j["status"] for j in jobs["jobs"]} == {done: "completed",
                                                                pending: "pending"}
        assert jobs["pagination"]["total"] == 2
        one = requests.get(f"{url}/api/jobs/{done}", timeout=5).json()
        assert one["outputs"] == {"1": {"text": ["x"]}} and one["outputs_count"] == 1
        assert "create_time" in one and one["workflow"]["prompt"] == simple_prompt("x")
        assert requests.get(f"{url}/api/jobs/{pending}", timeout=5).json()["status"] == "pending"
        assert requests.get(f"{url}/api/jobs/unknown", timeout=5).status_code == 404
        only = requests.get(f"{url}/api/jobs", params={"status": "pending"}, timeout=5).json()
        assert [j["id"] for j in only["jobs"]] == [pending]
        assert requests.get(f"{url}/api/jobs", params={"status": "odd"},
                            timeout=5).status_code == 400
        cancel = requests.post(f"{url}/api/jobs/{pending}/cancel", timeout=5).json()
        assert cancel == {"cancelled": True}
        assert requests.post(f"{url}/api/jobs/{pending}/cancel", timeout=5).json() == \
            {"cancelled": False}
        invalid = requests.post(f"{url}/api/jobs/cancel", json={"job_ids": ["x"]}, timeout=5)
        assert invalid.status_code == 400 and invalid.json()["invalid_ids"] == ["x"]
        comfy_server.resume()
