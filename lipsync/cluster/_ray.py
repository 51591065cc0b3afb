"""Ray, on use: the one import of it, connecting to a cluster (or starting one here), and what a
worker must share with the driver (the library's version and source).

Ray is an optional extra (``pip install 'comfyui-resync[cluster]'``): nothing here imports it at
import time, and asking for a cluster without it says what to install.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import sys
import tempfile
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ClusterError, DependencyError
from ..options import ClusterOptions

__all__ = ["INSTALL", "connect", "library_fingerprint", "pack_runtime_env", "require_ray", "worker_count"]

INSTALL = "pip install 'comfyui-resync[cluster]' (or: pip install 'ray>=2.9')"


def require_ray() -> Any:
    """The ``ray`` module, or DependencyError saying what to install."""
    try:
        import ray
    except ImportError as exc:
        raise DependencyError(
            f"Running on a cluster needs Ray, which is not installed: {INSTALL}. Without --cluster the job runs "
            "on this machine."
        ) from exc
    return ray


@lru_cache(maxsize=1)
def library_fingerprint() -> str:
    """``<version>+<digest of the library's source files>``: a driver and a worker that print
    the same run the same code (a node left on an older checkout does not)."""
    from .. import __version__

    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha1()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def pack_runtime_env() -> dict[str, Any] | None:
    """What the workers need to load this library under the name the driver uses.

    Installed or run from a checkout, the library is the top-level ``lipsync``, which every node
    imports itself (None). Inside ComfyUI it is ``<pack folder>.lipsync``: the driver's objects
    name that package, so its folder (the code only) travels to the workers with the job,
    under that name (``runtime_env`` ``py_modules``)."""
    top = __name__.split(".")[0]
    if top == "lipsync":
        return None
    folder = Path(sys.modules[top].__file__ or "").resolve().parent
    if folder.name != top:  # imported under another name than its folder's: ship it under that name
        link = Path(tempfile.mkdtemp(prefix="resync-pack-")) / top
        link.symlink_to(folder, target_is_directory=True)
        folder = link
    return {"py_modules": [str(folder)], "excludes": [".git", "tests", "bench", "workflows", "web", "*.mp4", "*.mkv"]}


def _local_cpus(address: str) -> int | None:
    """N of ``local:N`` (None: all of this machine's)."""
    _, _, count = address.partition(":")
    return int(count) if count else None


@contextlib.contextmanager
def connect(options: ClusterOptions) -> Iterator[Any]:
    """Ray, connected to ``options.cluster`` for the block: ``local[:N]`` starts one on this
    machine (N CPUs), anything else is an address for ``ray.init`` (``auto``, ``HOST:6379``,
    ``ray://HOST:10001``). A Ray this process already joined is used as it is and left running;
    one connected here is disconnected at the end (inside ComfyUI the pack's code goes with the
    job: ``pack_runtime_env``). ClusterError when the address does not answer."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    address = (options.cluster or "").strip()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report leaves the studio unasked
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
    env = pack_runtime_env()
    if env is not None:
        kwargs["runtime_env"] = env
    try:
        if address.startswith("local"):
            ray.init(num_cpus=_local_cpus(address), **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise ClusterError(
            f"Cannot reach the Ray cluster at {address!r} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
            "start it with 'ray start --head' (see the README's cluster section), check the address, or use "
            "--cluster local to run one on this machine."
        ) from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def worker_count(ray: Any, options: ClusterOptions, jobs: int) -> int:
    """How many workers to start for ``jobs`` pieces of work: ``options.workers``, or (0) as many
    as the cluster's GPUs (with ``gpus_per_worker``) or CPUs hold; never more than ``jobs``.
    ClusterError when the cluster cannot hold even one."""
    resources = ray.cluster_resources()
    if options.gpus_per_worker > 0:
        have, need, what = resources.get("GPU", 0.0), options.gpus_per_worker, "GPUs"
    else:
        have, need, what = resources.get("CPU", 0.0), options.cpus_per_worker, "CPUs"
    fits = math.floor(have / need + 1e-9) if need else 0
    if fits < 1:
        raise ClusterError(
            f"The cluster has {have:g} {what}; one worker needs {need:g}. Lower --gpus-per-worker/--cpus-per-worker "
            "or add nodes."
        )
    wanted = options.workers or fits
    return max(1, min(wanted, jobs))
