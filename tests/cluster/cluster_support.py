"""A real two-node Ray cluster on this machine (loopback only) and `loom serve --workers ray` against it.

The workers inherit the environment their raylet was started with: the test node pack
(LOOM_CUSTOM_NODES_DIR), a data folder under the session's tmp folder (LOOM_WORKER_DATA_DIR), one
torch thread, no hub.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import requests

from server.cluster.local_cluster import LOOPBACK_ENV, LocalCluster
from tests import shared_helpers
from tests.shared_helpers import REPO

PACK_DIR = Path(__file__).resolve().parent / "pack"
DEMO_CKPT = "loom-demo-sd1.safetensors"

CLUSTER_ENV = {**LOOPBACK_ENV, "LOOM_CUSTOM_NODES_DIR": str(PACK_DIR), "OMP_NUM_THREADS": "1",
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def start_cluster(worker_data: Path) -> LocalCluster:
    """Two one-CPU nodes whose workers load the test pack and keep their data under worker_data."""
    return LocalCluster(nodes=2, cpus_per_node=1, env={**CLUSTER_ENV, "LOOM_WORKER_DATA_DIR": str(worker_data)})


class ClusterServer(shared_helpers.ServeProcess):
    """`loom serve --workers ray:ADDRESS` in a subprocess, in its own Ray namespace unless given one."""

    def __init__(self, cluster: LocalCluster, data_dir: Path, *args: str, namespace: str | None = None,
                 port: int | None = None):
        self.namespace = namespace or f"t-{uuid.uuid4().hex[:8]}"
        super().__init__([sys.executable, "-m", "server.cli"], "--data-dir", str(data_dir),
                         "--workers", f"ray:{cluster.address}", "--ray-namespace", self.namespace, *args,
                         port=port, env=CLUSTER_ENV)

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kw)

    def stats(self) -> dict:
        return self.get("/api/loom/stats").json()

    def wait_workers(self, count: int, timeout: float = 240) -> dict:
        """Wait until `count` workers are ready; returns their stats by name."""
        deadline = time.monotonic() + timeout
        workers: dict = {}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"loom serve exited with {self.proc.returncode}:\n{self.text()}")
            try:
                workers = {n: w for n, w in self.stats()["workers"].items() if w.get("ready")}
            except requests.RequestException:
                workers = {}
            if len(workers) >= count:
                return workers
            time.sleep(0.5)
        raise AssertionError(f"{count} workers were not ready within {timeout}s: {workers}\n{self.text()[-4000:]}")

    def queue(self, prompt: dict, client_id: str | None = None, **fields) -> str:
        body = {"prompt": prompt, **({"client_id": client_id} if client_id else {}), **fields}
        r = requests.post(self.url + "/api/prompt", json=body, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["prompt_id"]


def txt2img_graph(seed: int = 0, text: str = "a red circle", steps: int = 2, size: int = 64,
                  prefix: str = "cluster") -> dict:
    """The demo checkpoint at its smallest: enough to load the model and make a picture."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": DEMO_CKPT}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": text}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
                                                   "latent_image": ["4", 0], "seed": seed, "steps": steps, "cfg": 5.0,
                                                   "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
    }


def repo_models() -> Path:
    return REPO / "models"
