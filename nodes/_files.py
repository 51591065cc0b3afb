"""Files the streaming nodes read: a video from the input folder or from a VIDEO input."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..lipsync.errors import InputError
from . import _host
from ._common import input_video_problem

__all__ = ["video_file"]


@contextmanager
def video_file(video: str, video_input: Any) -> Iterator[str]:
    """A path to stream from: the VIDEO input's own file, a temporary copy of an in-memory
    VIDEO (removed afterwards), or the input-folder file ``video``."""
    if video_input is None:
        if not video:
            raise InputError("No video: pick a file in 'video' (upload one) or connect a VIDEO to video_input.")
        path = _host.folder_paths().get_annotated_filepath(video)
        problem = input_video_problem(video, path)
        if problem:
            raise InputError(problem)
        yield str(path)
        return
    source = video_input.get_stream_source()
    if isinstance(source, (str, os.PathLike)):
        yield os.fspath(source)
        return
    temp_dir = _host.folder_paths().get_temp_directory()
    os.makedirs(temp_dir, exist_ok=True)
    handle, temp = tempfile.mkstemp(suffix=".mp4", prefix="resync-", dir=temp_dir)
    try:
        with os.fdopen(handle, "wb") as out:
            shutil.copyfileobj(source, out)
        yield temp
    finally:
        os.remove(temp)
