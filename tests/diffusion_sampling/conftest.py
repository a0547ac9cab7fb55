"""Fixtures for the sampling tests: tiny in-memory models and a model manager for them."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from tests.diffusion_sampling import tiny


class _InMemoryManager:
    """Hands out the modules the tests built (the real manager loads files; these never were)."""

    device = torch.device("cpu")
    dtype = torch.float32

    def unet_for(self, ref):
        return ref.unet.module

    def vae_for(self, ref):
        return ref.vae.module

    def controlnet_for(self, ref):
        return ref.controlnet.module


_MANAGER = _InMemoryManager()


@pytest.fixture(autouse=True)
def in_memory_manager(monkeypatch):
    """Route `model_manager()` to the in-memory manager (the real one may not exist yet)."""
    try:
        import nodes.diffusion.management as management
    except ImportError:
        management = types.ModuleType("nodes.diffusion.management")
        sys.modules["nodes.diffusion.management"] = management
    monkeypatch.setattr(management, "model_manager", lambda: _MANAGER, raising=False)
    yield _MANAGER


@pytest.fixture(scope="session")
def sd_model():
    return tiny.model_ref(tiny.tiny_unet())


@pytest.fixture(scope="session")
def sdxl_model():
    return tiny.model_ref(tiny.tiny_sdxl_unet(), family=tiny.SDXL, key="tiny-sdxl")


@pytest.fixture(scope="session")
def inpaint_model():
    return tiny.model_ref(tiny.tiny_unet(in_channels=9, seed=3), family="sd1_inpaint", key="tiny-inpaint")


@pytest.fixture(scope="session")
def vae():
    return tiny.vae_ref(tiny.tiny_vae())


@pytest.fixture(scope="session")
def controlnet(sd_model):
    return tiny.controlnet_ref(tiny.tiny_controlnet(sd_model.unet.module))


@pytest.fixture
def empty_latent():
    return {"samples": torch.zeros(1, 4, 16, 16)}


@pytest.fixture
def conds():
    return tiny.text_cond(1), tiny.text_cond(2)
