"""Fixtures for the model layer's tests: tiny models built once, offline guard, a fresh manager."""

from __future__ import annotations

import os
import socket

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

NETWORK_ATTEMPTS: list = []


@pytest.fixture(scope="session", autouse=True)
def no_network():
    """Fail any test that reaches for the network (the hub must never be asked for anything)."""
    original_connect, original_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def local(address) -> bool:
        host = address[0] if isinstance(address, tuple) else address
        return isinstance(host, str) and (host in ("localhost", "127.0.0.1", "::1") or host.startswith("/"))

    def guarded_connect(self, address):
        if self.family != socket.AF_UNIX and not local(address):
            NETWORK_ATTEMPTS.append(address)
            raise OSError(f"network access blocked in tests: {address}")
        return original_connect(self, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if not local((host,)):
            NETWORK_ATTEMPTS.append(host)
            raise socket.gaierror(f"DNS blocked in tests: {host}")
        return original_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = guarded_connect
    socket.getaddrinfo = guarded_getaddrinfo
    yield NETWORK_ATTEMPTS
    socket.socket.connect, socket.getaddrinfo = original_connect, original_getaddrinfo


@pytest.fixture(scope="session")
def tiny_cache():
    from tests.tiny_models import build_cache

    return build_cache()


@pytest.fixture
def models_dir(data_dirs, tiny_cache):
    root = data_dirs.models_dirs[0]
    for sub in ("checkpoints", "diffusion_models", "vae", "text_encoders", "loras", "embeddings", "controlnet",
                "diffusers"):
        (root / sub).mkdir(exist_ok=True)
    return root


@pytest.fixture
def manager():
    """A fresh process-wide model manager on the CPU for each test."""
    from nodes.diffusion.management import configure_model_manager

    mm = configure_model_manager(device="cpu")
    yield mm
    mm.free(unload_models=True)
