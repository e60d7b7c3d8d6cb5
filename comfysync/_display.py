"""How images look in a notebook: image bytes → the MIME bundles Jupyter displays.

Results, file tuples and preview events display inline through IPython's ``_repr_*_``
protocol; this module holds the rendering they share, and imports nothing from IPython (it
only builds dicts and HTML strings), so nothing here costs anything outside a notebook.

Notebook front ends render ``image/png``, ``image/jpeg`` and ``image/gif`` from a bundle;
other image formats (WebP, TIFF…) are converted to PNG with Pillow when it is installed. In
HTML (the grid of a result's images) browsers also show WebP, AVIF, APNG and BMP as they are.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

__all__ = [
    "GRID_MAX",
    "displayable",
    "sniff",
    "image_bundle",
    "grid_html",
    "grid_bundle",
    "GridItem",
]

log = logging.getLogger("comfysync.display")

#: Image types a notebook front end renders from a MIME bundle as they are.
_BUNDLE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif"})
#: Image types a browser shows in an ``<img>`` (the HTML grid) as they are.
_HTML_TYPES = _BUNDLE_TYPES | {"image/webp", "image/avif", "image/apng", "image/bmp"}
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)
#: At most this many images are embedded in one grid: each is inlined whole into the
#: notebook file, so a batch of hundreds would make it unusable; the rest are counted.
GRID_MAX = 32
#: Width of one grid cell in CSS pixels (images scale down to it, never up).
_CELL_PX = 256

#: One grid entry: ``(caption, loader)``; the loader returns the image's bytes or raises.
GridItem = Tuple[str, Callable[[], bytes]]


def _to_png(data: bytes) -> Optional[bytes]:
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            buf = io.BytesIO()
            image.save(buf, format="PNG")
            return buf.getvalue()
    except Exception as exc:  # undecodable data: no display rather than an error
        log.debug("cannot convert image for display: %s", exc)
        return None


def sniff(data: bytes) -> Optional[str]:
    """The image type ``data`` really holds, from its first bytes (a file's name or a
    frame's header may say otherwise); None when it is none of the common web formats."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:12] == b"ftypavif":
        return "image/avif"
    return None


def displayable(
    data: bytes, allowed: Iterable[str] = _BUNDLE_TYPES
) -> Optional[Tuple[bytes, str]]:
    """``(bytes, mime)`` a front end can show: as they are when they hold a type among
    ``allowed`` (the bytes decide, not a file name or a frame header), else converted to
    PNG (None when Pillow is missing or cannot decode them)."""
    actual = sniff(data)
    if actual is not None and actual in set(allowed):
        return data, actual
    png = _to_png(data)
    return (png, "image/png") if png is not None else None


def image_bundle(data: bytes, text: str) -> Dict[str, Any]:
    """The bundle of one image: its bytes (base64, as the Jupyter protocol carries binary
    data) under their MIME type, and ``text`` as ``text/plain``. Only ``text/plain`` when
    the image cannot be shown."""
    bundle: Dict[str, Any] = {"text/plain": text}
    shown = displayable(data)
    if shown is not None:
        bundle[shown[1]] = base64.b64encode(shown[0]).decode("ascii")
    return bundle


def _img_tag(data: bytes, mime: str, caption: str) -> str:
    uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return (
        f'<figure style="margin:0;width:{_CELL_PX}px">'
        f'<img src="{uri}" alt="{html.escape(caption)}" '
        'style="max-width:100%;height:auto;display:block"/>'
        '<figcaption style="font-size:80%;overflow-wrap:anywhere">'
        f"{html.escape(caption)}</figcaption></figure>"
    )


def grid_html(items: List[GridItem], *, heading: str = "") -> Tuple[str, List[Tuple[bytes, str]]]:
    """An HTML grid of the images of ``items`` (at most :data:`GRID_MAX`, the rest counted),
    and the ``(bytes, mime)`` of each image shown. An image that cannot be loaded (server
    gone, undecodable) is named in the grid instead of failing the whole display."""
    cells: List[str] = []
    shown: List[Tuple[bytes, str]] = []
    for caption, load in items[:GRID_MAX]:
        try:
            image = displayable(load(), _HTML_TYPES)
        except Exception as exc:  # a display hook must not raise into the notebook
            log.warning("cannot display %s: %s", caption, exc)
            image = None
        if image is None:
            cells.append(
                f'<div style="width:{_CELL_PX}px;font-size:80%">'
                f"{html.escape(caption)} (cannot be shown)</div>"
            )
            continue
        cells.append(_img_tag(image[0], image[1], caption))
        shown.append(image)
    more = len(items) - GRID_MAX
    if more > 0:
        cells.append(f'<div style="align-self:center">… and {more} more</div>')
    head = f"<div>{html.escape(heading)}</div>" if heading else ""
    body = '<div style="display:flex;flex-wrap:wrap;gap:6px">' + "".join(cells) + "</div>"
    return head + body, shown


def grid_bundle(items: List[GridItem], text: str, *, heading: str = "") -> Dict[str, Any]:
    """The bundle of a group of images: ``text/plain``, the HTML grid, and — when exactly
    one image is shown — that image under its own type (for viewers without HTML)."""
    bundle: Dict[str, Any] = {"text/plain": text}
    if not items:
        return bundle
    grid, shown = grid_html(items, heading=heading)
    bundle["text/html"] = grid
    if len(shown) == 1 and len(items) == 1 and shown[0][1] in _BUNDLE_TYPES:
        bundle[shown[0][1]] = base64.b64encode(shown[0][0]).decode("ascii")
    return bundle
