"""A fake of ``comfy_api.latest``: ComfyExtension, io, ui, InputImpl."""

from __future__ import annotations

import io as _bytes_io
from abc import ABC, abstractmethod

from . import comfy_io as io
from . import comfy_ui as ui


class ComfyExtension(ABC):
    async def on_load(self) -> None:
        """Called when the extension is loaded."""

    @abstractmethod
    async def get_node_list(self) -> list:
        """The extension's nodes."""


class VideoFromFile:
    """The host's VIDEO for a file (or BytesIO): nothing is decoded until asked."""

    def __init__(self, file):
        self._file = file
        self.components_requested = 0

    def get_stream_source(self):
        if isinstance(self._file, _bytes_io.BytesIO):
            self._file.seek(0)
        return self._file

    def get_components(self):
        self.components_requested += 1
        raise AssertionError("the pack must stream a VIDEO, not decode it whole")


class InputImpl:
    VideoFromFile = VideoFromFile


__all__ = ["ComfyExtension", "InputImpl", "io", "ui"]
