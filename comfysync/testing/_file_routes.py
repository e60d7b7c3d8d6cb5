"""FakeComfyUI's file and user routes: ``/view``, ``/upload/image``, ``/upload/mask``,
``/view_metadata``, ``/users``, ``/settings``, ``/userdata``.

Path rules live in :mod:`._files`; these handlers only map their outcomes to the real status
codes and bodies. Single-user mode only: every request is the ``default`` user.
"""

from __future__ import annotations

import glob
import io
import json
import mimetypes
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Union

from aiohttp import web

from ._files import (
    Workdirs,
    file_info,
    resolve_mask_original,
    resolve_view,
    upload_target,
    user_path,
)

if TYPE_CHECKING:
    from ._routes import Route

USER = "default"
_UNSAFE_TYPES = {"text/html", "text/html-sandboxed", "application/xhtml+xml",
                 "text/javascript", "text/css"}
_BAD_FILENAME = 'Invalid filename. Please avoid special characters like :\\/*?"<>|'


class FileRoutes:
    """Files, uploads, users, settings and user data: all they touch is the server's
    folders."""

    def __init__(self, dirs: Workdirs) -> None:
        self.dirs = dirs

    def routes(self) -> List[Route]:
        return [
            ("GET", "/view", self.view),
            ("POST", "/upload/image", self.upload_image),
            ("POST", "/upload/mask", self.upload_mask),
            ("GET", "/view_metadata/{folder_name}", self.view_metadata),
            ("GET", "/users", self.get_users),
            ("POST", "/users", self.post_users),
            ("GET", "/settings", self.get_settings),
            ("GET", "/settings/{id}", self.get_setting),
            ("POST", "/settings", self.post_settings),
            ("POST", "/settings/{id}", self.post_setting),
            ("GET", "/userdata", self.list_userdata),
            ("GET", "/v2/userdata", self.list_userdata_v2),
            ("GET", "/userdata/{file}", self.get_userdata),
            ("POST", "/userdata/{file}", self.post_userdata),
            ("DELETE", "/userdata/{file}", self.delete_userdata),
            ("POST", "/userdata/{file}/move/{dest}", self.move_userdata),
        ]

    # --------------------------------------------------------------------- view
    async def view(self, request: web.Request) -> web.StreamResponse:
        query = request.rel_url.query
        if "filename" not in query:
            return web.Response(status=404)
        found = resolve_view(self.dirs, query["filename"], query.get("type"),
                             query.get("subfolder"))
        if found.path is None:
            return web.Response(status=found.status)
        path = found.path
        headers = {"Content-Disposition": f'filename="{path.name}"'}
        if "preview" in query:
            return self._preview(path, query["preview"], query.get("channel", "rgba"), headers)
        channel = query.get("channel", "rgba")
        if channel in ("rgb", "a"):
            return self._channel(path, channel, headers)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if content_type in _UNSAFE_TYPES:
            content_type = "application/octet-stream"
        headers["Content-Type"] = content_type
        return web.FileResponse(path, headers=headers)

    @staticmethod
    def _preview(path: Path, spec: str, channel: str, headers: Dict[str, str]) -> web.Response:
        from PIL import Image

        parts = spec.split(";")
        fmt = parts[0]
        if fmt not in ("webp", "jpeg") or "a" in channel:
            fmt = "webp"
        quality = int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 90
        with Image.open(path) as img:
            image = img.convert("RGB") if fmt == "jpeg" or channel == "rgb" else img.copy()
        buf = io.BytesIO()
        image.save(buf, format=fmt, quality=quality)
        return web.Response(body=buf.getvalue(), content_type=f"image/{fmt}", headers=headers)

    @staticmethod
    def _channel(path: Path, channel: str, headers: Dict[str, str]) -> web.Response:
        from PIL import Image

        with Image.open(path) as img:
            if channel == "rgb":
                out = img.convert("RGB")
            else:
                rgba = img.convert("RGBA") if "A" in img.getbands() else None
                alpha = rgba.getchannel("A") if rgba else Image.new("L", img.size, 255)
                out = Image.new("RGBA", img.size, (0, 0, 0, 255))
                out.putalpha(alpha)
        buf = io.BytesIO()
        out.save(buf, format="PNG")
        return web.Response(body=buf.getvalue(), content_type="image/png", headers=headers)

    # ------------------------------------------------------------------ uploads
    async def upload_image(self, request: web.Request) -> web.Response:
        return await self._upload(request, mask=False)

    async def upload_mask(self, request: web.Request) -> web.Response:
        return await self._upload(request, mask=True)

    async def _upload(self, request: web.Request, mask: bool) -> web.Response:
        post = await request.post()
        image = post.get("image")
        overwrite = post.get("overwrite")
        upload_type = post.get("type")
        dir_type = "input" if upload_type is None else str(upload_type)
        base = self.dirs.by_type(dir_type)
        if base is None:
            raise ValueError(f"unknown upload type {dir_type!r}")  # the real server: 500
        if not isinstance(image, web.FileField) or image.file is None:
            return web.Response(status=400)
        if not image.filename:
            return web.Response(status=400)
        subfolder = str(post.get("subfolder", ""))
        content = image.file.read()
        target = upload_target(base, subfolder, image.filename, content,
                               overwrite in ("true", "1"))
        if target is None:
            return web.Response(status=400)
        if not target.duplicate:
            if mask:
                self._save_mask(post.get("original_ref"), content, target.path)
            else:
                target.path.write_bytes(content)
        return web.json_response({"name": target.name, "subfolder": subfolder, "type": dir_type})

    def _save_mask(self, original_ref: Any, mask: bytes, target: Path) -> None:
        """Composite the mask's alpha onto the referenced image; an unusable reference
        silently writes nothing, a missing one raises (→ 500), as in the real server."""
        from PIL import Image
        from PIL.PngImagePlugin import PngInfo

        ref = json.loads(original_ref)
        original = resolve_mask_original(self.dirs, ref)
        if original is None:
            return
        with Image.open(original) as img:
            metadata = PngInfo()
            for key, value in getattr(img, "text", {}).items():
                metadata.add_text(key, value)
            composed = img.convert("RGBA")
        with Image.open(io.BytesIO(mask)) as mask_img:
            composed.putalpha(mask_img.convert("RGBA").getchannel("A"))
        composed.save(target, format="PNG", compress_level=4, pnginfo=metadata)

    async def view_metadata(self, request: web.Request) -> web.Response:
        return web.Response(status=404)  # no safetensors files in a fake server

    # -------------------------------------------------------------------- users
    def _user_root(self) -> Path:
        return self.dirs.user / USER

    async def get_users(self, request: web.Request) -> web.Response:
        return web.json_response({"storage": "server", "migrated": self._user_root().exists()})

    async def post_users(self, request: web.Request) -> web.Response:
        body = await request.json()
        username = body["username"]
        users = self._load_users()
        if username in users.values():
            return web.json_response({"error": "Duplicate username."}, status=400)
        name = str(username).strip()
        if not name:
            raise ValueError("username not provided")  # → 500, as the real server
        user_id = re.sub("[^a-zA-Z0-9-_]+", "-", name) + "_" + str(uuid.uuid4())
        users[user_id] = name
        (self.dirs.user / "users.json").write_text(json.dumps(users))
        return web.json_response(user_id)

    def _load_users(self) -> Dict[str, str]:
        path = self.dirs.user / "users.json"
        if not path.is_file():
            return {}
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}

    # ----------------------------------------------------------------- settings
    def _settings_path(self) -> Path:
        path = self._user_root() / "comfy.settings.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _settings(self) -> Dict[str, Any]:
        path = self._settings_path()
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text())
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _save_settings(self, settings: Dict[str, Any]) -> None:
        self._settings_path().write_text(json.dumps(settings, indent=4))

    async def get_settings(self, request: web.Request) -> web.Response:
        return web.json_response(self._settings())

    async def get_setting(self, request: web.Request) -> web.Response:
        return web.json_response(self._settings().get(request.match_info["id"]))

    async def post_settings(self, request: web.Request) -> web.Response:
        settings = self._settings()
        new = await request.json()
        self._save_settings({**settings, **new})
        return web.Response(status=200)

    async def post_setting(self, request: web.Request) -> web.Response:
        settings = self._settings()
        settings[request.match_info["id"]] = await request.json()
        self._save_settings(settings)
        return web.Response(status=200)

    # ----------------------------------------------------------------- userdata
    def _path(self, file: Optional[str], create_dir: bool = True) -> Optional[Path]:
        path = user_path(self._user_root(), file)
        if path is not None and create_dir:
            path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _file_param(
        self, request: web.Request, param: str = "file", check_exists: bool = False
    ) -> Union[Path, web.Response]:
        file = request.match_info.get(param)
        if not file:
            return web.Response(status=400)
        path = self._path(file)
        if path is None:
            return web.Response(status=403)
        if check_exists and not path.exists():
            return web.Response(status=404)
        return path

    def _describe(self, path: Path, request: web.Request) -> Any:
        root = self._user_root()
        if request.rel_url.query.get("full_info", "false").lower() == "true":
            return file_info(path, root)
        return os.path.relpath(path, root)

    async def list_userdata(self, request: web.Request) -> web.Response:
        query = request.rel_url.query
        directory = query.get("dir", "")
        if not directory:
            return web.Response(status=400, text="Directory not provided")
        path = self._path(directory)
        if path is None:
            return web.Response(status=403, text="Invalid directory")
        if not path.exists():
            return web.Response(status=404, text="Directory not found")
        recurse = query.get("recurse", "").lower() == "true"
        full_info = query.get("full_info", "").lower() == "true"
        split = query.get("split", "").lower() == "true"
        pattern = os.path.join(glob.escape(str(path)), "**", "*") if recurse else \
            os.path.join(glob.escape(str(path)), "*")
        results: List[Any] = []
        for full in glob.glob(pattern, recursive=recurse):
            if not os.path.isfile(full):
                continue
            if full_info:
                results.append(file_info(Path(full), path))
                continue
            rel = os.path.relpath(full, path).replace(os.sep, "/")
            results.append([rel] + rel.split("/") if split else rel)
        return web.json_response(results)

    async def list_userdata_v2(self, request: web.Request) -> web.Response:
        root = self._user_root()
        rel = request.rel_url.query.get("path", "")
        target = user_path(root, rel) if rel else root
        if target is None:
            return web.Response(status=400, text="Invalid path requested")
        if not root.exists():
            return web.json_response([])
        if not target.exists():
            return web.Response(status=404, text="Requested path not found")
        if not target.is_dir():
            return web.Response(status=400, text="Requested path is not a directory")
        entries: List[Dict[str, Any]] = []
        for dirpath, dirnames, filenames in os.walk(target):
            for name in dirnames:
                full = Path(dirpath) / name
                entries.append({"name": name, "type": "directory",
                                "path": os.path.relpath(full, root).replace(os.sep, "/")})
            for name in filenames:
                full = Path(dirpath) / name
                stat = full.stat()
                entries.append({"name": name, "type": "file",
                                "path": os.path.relpath(full, root).replace(os.sep, "/"),
                                "size": stat.st_size, "modified": stat.st_mtime})
        entries.sort(key=lambda e: (e["type"] != "directory", str(e["name"]).lower()))
        return web.json_response(entries)

    async def get_userdata(self, request: web.Request) -> web.StreamResponse:
        path = self._file_param(request, check_exists=True)
        if isinstance(path, web.Response):
            return path
        if not path.is_file():
            return web.Response(status=404)
        return web.FileResponse(path)

    async def post_userdata(self, request: web.Request) -> web.Response:
        path = self._file_param(request)
        if isinstance(path, web.Response):
            return path
        overwrite = request.rel_url.query.get("overwrite", "true") != "false"
        if not overwrite and path.exists():
            return web.Response(status=409, text="File already exists")
        body = await request.read()
        try:
            path.write_bytes(body)
        except OSError:
            return web.Response(status=400, reason=_BAD_FILENAME)
        return web.json_response(self._describe(path, request))

    async def delete_userdata(self, request: web.Request) -> web.Response:
        path = self._file_param(request, check_exists=True)
        if isinstance(path, web.Response):
            return path
        path.unlink()
        return web.Response(status=204)

    async def move_userdata(self, request: web.Request) -> web.Response:
        source = self._file_param(request, check_exists=True)
        if isinstance(source, web.Response):
            return source
        dest = self._file_param(request, param="dest")
        if isinstance(dest, web.Response):
            raise ValueError("destination escapes the user directory")  # real server: 500
        overwrite = request.rel_url.query.get("overwrite", "true") != "false"
        if not overwrite and dest.exists():
            return web.Response(status=409, text="File already exists")
        shutil.move(str(source), str(dest))
        return web.json_response(self._describe(dest, request))
