"""A real local Ray for the cluster tests: 2 CPUs, HOME and its temp folder under the test's tmp
folder (Ray 2.60 writes an auth token under HOME), usage stats off. Skipped where Ray is absent."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def ray_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'comfyui-resync[cluster]'")
    home = tmp_path_factory.mktemp("ray")
    names = ("HOME", "TMPDIR", "RAY_TMPDIR", "RAY_USAGE_STATS_ENABLED")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(HOME=str(home), TMPDIR=str(home), RAY_TMPDIR=str(home), RAY_USAGE_STATS_ENABLED="0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield ray
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
