"""Browser tests of Loom's editor against a real `loom serve` subprocess and headless Chromium.

Two servers per session: the plain `.venv/bin/loom serve` (everything users get), and the same
server started through `tests/serve_with_test_nodes.py` with `browser_test_nodes.py`, which adds a
slow node (progress, previews, interrupts) and a failing node for the run-time tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, HERE, REPO, VIEWPORT, Editor, Server, _start


@pytest.fixture(scope="session")
def loom_server(tmp_path_factory):
    """The plain `loom serve`, as users run it."""
    server = _start(tmp_path_factory, "serve", [str(REPO / ".venv" / "bin" / "loom")])
    yield server
    server.stop()


@pytest.fixture(scope="session")
def test_nodes_server(tmp_path_factory):
    """`loom serve` with the slow and failing test nodes registered, and its output cache on."""
    command = [sys.executable, str(REPO / "tests" / "serve_with_test_nodes.py"), str(HERE / "browser_test_nodes.py")]
    server = _start(tmp_path_factory, "serve_test_nodes", command, cache=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (./setup installs it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def make_editor(browser, tmp_path):
    pages = []

    def make(server: Server, query: str = "fresh") -> Editor:
        context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        page = context.new_page()
        pages.append(context)
        shots = tmp_path / "screenshots"
        shots.mkdir(exist_ok=True)
        return Editor(page, server, shots).open(query)

    yield make
    for context in pages:
        context.close()


@pytest.fixture
def editor(make_editor, loom_server) -> Editor:
    return make_editor(loom_server)
