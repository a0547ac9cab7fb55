"""Frame time of the editor with 500 nodes, Loom's drawing vs plain LiteGraph drawing (baseline).

    .venv/bin/python tests/browser/bench_frame_time.py [pairs]

Starts `loom serve` on a free port with a temporary data dir, opens the editor in headless
Chromium (software rendering, so a real browser with a GPU is faster), builds `pairs` linked
node pairs (default 250 = 500 nodes), and times full redraws (canvas.draw(true, true)).
"""

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from browser_support import CHROMIUM, CHROMIUM_ARGS, REPO, VIEWPORT, Server, free_port  # noqa: E402
from test_scale_and_library import BUILD_JS, MEASURE_JS  # noqa: E402

TOGGLE_JS = """(plain) => {
    const proto = LiteGraph.LGraphCanvas.prototype;
    proto.loomDecorated ??= proto.drawNode;
    proto.drawNode = plain ? proto.loomDecorated.loomOriginal : proto.loomDecorated;
}"""


def main() -> int:
    from playwright.sync_api import sync_playwright

    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 250
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = Server([str(REPO / ".venv/bin/loom"), "serve", "--port", str(port), "--data-dir", tmp], Path(tmp), port)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport=VIEWPORT)
                page.goto(f"{server.url}/?fresh")
                page.wait_for_function("document.body.dataset.ready")
                page.evaluate(BUILD_JS, pairs)
                print(f"{2 * pairs} nodes, {pairs} links, headless Chromium {browser.version}, software GL")
                print(f"{'zoom':>10} {'visible':>8} {'LiteGraph ms (median/p90)':>27} {'Loom ms (median/p90)':>22}")
                for scale in (1.0, 0.5, "fit"):
                    page.evaluate(TOGGLE_JS, True)
                    base = page.evaluate(MEASURE_JS, [scale, 20])
                    page.evaluate(TOGGLE_JS, False)
                    loom = page.evaluate(MEASURE_JS, [scale, 20])
                    print(f"{loom['scale']:>10.2f} {loom['visible']:>8} "
                          f"{base['median_ms']:>14.1f} / {base['p90_ms']:<10.1f} {loom['median_ms']:>10.1f} / {loom['p90_ms']:<10.1f}")
                browser.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
