"""Settings persist in the SQLite store across restarts, and a ComfyUI settings file is taken in."""

import json

from srv_helpers import LiveServer

from server.config import ServeConfig
from tests.shared_helpers import free_port


def start(tmp_path, registry):
    return LiveServer(ServeConfig(data_dir=tmp_path / "data", models_dir=tmp_path / "models", port=free_port()),
                      registry).start()


def test_settings_survive_a_restart_and_comfy_settings_are_imported(tmp_path, registry):
    user = tmp_path / "data" / "user" / "default"
    user.mkdir(parents=True)
    (user / "comfy.settings.json").write_text(json.dumps({"Comfy.LinkRenderMode": 2}))
    server = start(tmp_path, registry)
    try:
        assert server.get("/api/settings").json() == {"Comfy.LinkRenderMode": 2}
        assert server.post("/api/settings/Comfy.Locale", json="fr").status_code == 200
        assert server.post("/api/settings", json={"Loom.Theme": "dark", "Comfy.LinkRenderMode": 1}).status_code == 200
        assert server.post("/api/settings", json=[1, 2]).status_code == 400
    finally:
        server.stop()
    server = start(tmp_path, registry)
    try:
        assert server.get("/api/settings").json() == {"Comfy.LinkRenderMode": 1, "Comfy.Locale": "fr",
                                                      "Loom.Theme": "dark"}
        assert server.get("/api/settings/Comfy.Locale").json() == "fr"
    finally:
        server.stop()
