"""A fake of ``comfy.utils.ProgressBar``; like the host's hook, an update checks for Cancel."""

from __future__ import annotations

from . import model_management

updates: list[tuple[int, int]] = []


def reset() -> None:
    updates.clear()


class ProgressBar:
    def __init__(self, total, node_id=None):
        self.total, self.current, self.node_id = total, 0, node_id

    def update_absolute(self, value, total=None, preview=None):
        if total is not None:
            self.total = total
        self.current = min(value, self.total)
        model_management.throw_exception_if_processing_interrupted()
        updates.append((self.current, self.total))

    def update(self, value):
        self.update_absolute(self.current + value)
