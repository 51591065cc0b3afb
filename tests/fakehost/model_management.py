"""A fake of ``comfy.model_management``: CPU only, records what the pack asks for."""

from __future__ import annotations

import torch

loaded: list = []
empty_cache_calls = 0
_interrupt = False


class InterruptProcessingException(Exception):
    pass


def reset() -> None:
    global empty_cache_calls, _interrupt
    loaded.clear()
    empty_cache_calls = 0
    _interrupt = False


def get_torch_device():
    return torch.device("cpu")


def unet_offload_device():
    return torch.device("cpu")


def intermediate_device():
    return torch.device("cpu")


def should_use_fp16(device=None, model_params=0, prioritize_performance=True, manual_cast=False):
    return False


def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                    force_full_load=False):
    for m in models:
        loaded.append((m, force_full_load))
        m.model.to(m.load_device)
        m.model.device = m.load_device  # as the real ModelPatcher.load does (plain attributes on the module)


def load_model_gpu(model):
    return load_models_gpu([model])


def soft_empty_cache(force=False):
    global empty_cache_calls
    empty_cache_calls += 1


def interrupt_current_processing(value=True):
    global _interrupt
    _interrupt = value


def processing_interrupted():
    return _interrupt


def throw_exception_if_processing_interrupted():
    global _interrupt
    if _interrupt:
        _interrupt = False
        raise InterruptProcessingException()
