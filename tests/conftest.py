"""Shared test set-up: offline, one torch thread, a registry of the built-in nodes."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


def pytest_configure(config):
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


@pytest.fixture
def data_dirs(tmp_path):
    """Configure Loom's folders under a temporary directory and return them."""
    from nodes import paths

    models = tmp_path / "models"
    models.mkdir()
    return paths.configure(data_dir=tmp_path / "data", models_dir=models)


def pytest_collection_modifyitems(config, items):
    # Playwright's sync API keeps an event loop running on the main thread while its browser is
    # open, which breaks any later test that starts a loop of its own. The editor's tests share one
    # browser for the whole session, so they run last (the sort is stable: order is kept otherwise).
    items.sort(key=lambda item: item.nodeid.replace("\\", "/").startswith("tests/browser/"))
