"""Fixtures for the sampling tests: tiny in-memory models and a model manager for them."""

from __future__ import annotations

import pytest
import torch

from tests.diffusion_sampling import tiny


@pytest.fixture(autouse=True, scope="session")
def cpu_manager():
    """The real model manager, on the CPU: it adopts the in-memory test modules on first use."""
    from nodes.diffusion.management import model_manager

    manager = model_manager()
    assert torch.device(manager.device).type == "cpu", "the sampling tests expect a CPU model manager"
    return manager


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
