"""The comfy-api-client names of lower layers: event-name aliases and result attributes.

Imports nothing of comfysync, so ``comfysync.events`` and ``comfysync._results`` can use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, Mapping, TypeVar

__all__ = ["EVENT_ALIASES", "SeedFileNames", "SeedResultNames"]

#: Extra names ``on()`` accepts for an event key: ``"all"`` for ``"*"``, and
#: ``"execution_complete"``, the name the seed's docs use for ``execution_success``.
EVENT_ALIASES: Mapping[str, str] = {
    "all": "*",
    "execution_complete": "execution_success",
}

_Images = TypeVar("_Images")
_Image = TypeVar("_Image")


class SeedResultNames(Generic[_Images]):
    """Mixed into ``PromptResult``: ``output_images``, the seed's name for ``images``."""

    __slots__ = ()

    if TYPE_CHECKING:
        @property
        def images(self) -> _Images: ...

    @property
    def output_images(self) -> _Images:
        """Seed-compatible alias of :attr:`images`."""
        return self.images


class SeedFileNames(Generic[_Image]):
    """Mixed into ``OutputFile``: ``image``, the seed's name for ``to_pil()``."""

    __slots__ = ()

    if TYPE_CHECKING:
        def to_pil(self) -> _Image: ...

    @property
    def image(self) -> _Image:
        """Seed-compatible alias of ``to_pil()`` (``result.output_images[0].image``)."""
        return self.to_pil()
