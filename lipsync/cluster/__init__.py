"""Running jobs on a Ray cluster (optional: ``pip install 'comfyui-resync[cluster]'``).

``run_batch_on_cluster`` runs a batch's items on several workers (``batch``);
``lipsync_video_on_cluster`` renders one long video in frame ranges and joins them (``video``).
Both take a ``ClusterOptions`` (``lipsync.options``); Ray is imported only when one of them runs
(``_ray.require_ray`` says what to install when it is missing). Above the engine, below the
command line and the nodes: the workers run the engine's own functions, the driver its tracker.
"""

from __future__ import annotations

from ._ray import INSTALL, require_ray
from .batch import run_batch_on_cluster
from .video import lipsync_video_on_cluster

__all__ = ["INSTALL", "lipsync_video_on_cluster", "require_ray", "run_batch_on_cluster"]
