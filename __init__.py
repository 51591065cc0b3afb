"""ReSync: Wav2Lip lip-sync nodes for ComfyUI.

ComfyUI imports this folder as a package (named after the folder, whatever it is) and calls
``comfy_entrypoint``; the nodes live in ``nodes/`` and the engine in ``lipsync/``. ComfyUI's
modules are imported only inside ``comfy_entrypoint``, so the package imports anywhere (tests,
tools) without a host. There is deliberately no NODE_CLASS_MAPPINGS: the host would then
ignore the V3 entry point.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]

WEB_DIRECTORY = "./web"
"""Browser extensions of the pack (served by the host when the folder exists)."""


async def comfy_entrypoint() -> Any:
    """The V3 entry point: the pack's ComfyExtension."""
    from .nodes import ReSyncExtension

    return ReSyncExtension()
