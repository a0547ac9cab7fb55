"""`loom serve`: the ComfyUI-compatible HTTP + WebSocket server."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
import sys
from pathlib import Path

from server.config import ServeConfig

log = logging.getLogger("loom.server")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("serve", help="run the editor and the ComfyUI-compatible API",
                              description="Serve Loom's editor and the ComfyUI-compatible HTTP + WebSocket API.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; other addresses need --auth-token or --insecure)")
    p.add_argument("--port", type=int, default=8188, help="port (default 8188; 0 picks a free one)")
    p.add_argument("--data-dir", type=Path, help="input/, output/, temp/, user/ and the queue database (default ./data)")
    p.add_argument("--models-dir", type=Path, help="model folders (default ./models)")
    p.add_argument("--cpu", action="store_true", help="run everything on the CPU")
    cache = p.add_mutually_exclusive_group()
    cache.add_argument("--cache-ram", type=float, metavar="GB", help="RAM budget of the output cache between runs")
    cache.add_argument("--cache-none", action="store_true", help="keep no outputs between runs")
    p.add_argument("--auth-token", metavar="TOKEN",
                   help="require this token on every request ('Authorization: Bearer TOKEN'; browsers open "
                        "/?token=TOKEN once)")
    p.add_argument("--max-upload-mb", type=float, default=100.0, help="largest upload or request body (default 100)")
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback --host without --auth-token")
    p.add_argument("--enable-cors-header", nargs="?", const="*", default=None, metavar="ORIGIN",
                   help="allow cross-origin requests from ORIGIN (default '*')")
    p.add_argument("--frontend", choices=("loom", "comfy"), default="loom",
                   help="the editor served at /: Loom's own, or the official ComfyUI frontend package")
    p.add_argument("--fast", action="store_true",
                   help="compile the UNet (torch.compile with CUDA graphs, channels_last) on a GPU; "
                        "the first run of each image size pays the compile time")
    p.add_argument("--lowvram", action="store_true", help="stream model weights to the GPU module by module")
    p.add_argument("--vram-budget", type=float, metavar="GB", help="GPU memory models may hold (default: all but 2 GB)")
    p.add_argument("--model-ram", type=float, metavar="GB", help="RAM loaded models may hold before the oldest unload")
    p.add_argument("--precision", choices=("fp16", "bf16", "fp32"), help="model precision on the GPU (default fp16)")
    p.add_argument("--workers", default="local", metavar="local|ray[:ADDRESS]",
                   help="where prompts run: 'local' (default: in this process) or 'ray' (workers on a Ray cluster: "
                        "'ray' starts a cluster of this machine alone, 'ray:auto' joins the one "
                        "running on this machine, 'ray:HOST:PORT' joins that one)")
    p.add_argument("--worker-cpus", type=int, metavar="N",
                   help="with --workers ray: one worker per N CPUs on machines without a GPU (default: one per machine)")
    p.add_argument("--ray-namespace", default="loom", metavar="NAME",
                   help="with --workers ray: the Ray namespace of this server's workers (default 'loom'); servers "
                        "sharing a cluster need different ones")
    p.add_argument("--disable-custom-nodes", action="store_true", help="load no node packs (except --custom-nodes-allow)")
    p.add_argument("--custom-nodes-allow", metavar="LIST",
                   help="comma-separated node packs to load; no others are")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return p


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    allow = None
    if args.custom_nodes_allow is not None:
        allow = [a.strip() for a in args.custom_nodes_allow.split(",") if a.strip()]
    return ServeConfig(host=args.host, port=args.port, data_dir=args.data_dir, models_dir=args.models_dir,
                       cpu=args.cpu, cache_ram_gb=args.cache_ram, cache_none=args.cache_none,
                       auth_token=args.auth_token, max_upload_mb=args.max_upload_mb, insecure=args.insecure,
                       cors_origin=args.enable_cors_header, frontend=args.frontend, fast=args.fast,
                       disable_custom_nodes=args.disable_custom_nodes, custom_nodes_allow=allow,
                       workers=args.workers, worker_cpus=args.worker_cpus, ray_namespace=args.ray_namespace)


def build_registry(config: ServeConfig):
    from nodes.custom_loader import load_custom_nodes
    from nodes.registry import builtin_registry

    registry = builtin_registry()
    for name, error in registry.load_errors.items():
        log.error("built-in nodes %s failed to load:\n%s", name, error)
    load_custom_nodes(registry, allow=config.custom_nodes_allow, disabled=config.disable_custom_nodes)
    return registry


def apply_fast(config: ServeConfig) -> None:
    if not config.fast:
        return
    from nodes.diffusion.sampling import settings

    settings.fast = True


def setup_logging(verbose: bool):
    from server.logbuffer import LogBuffer

    buffer = LogBuffer()
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    root.addHandler(buffer)
    return buffer


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    problem = config.check_exposure()
    if problem:
        print(f"loom serve: {problem}", file=sys.stderr)
        return 2
    if config.port < 0 or config.port > 65535:
        print(f"loom serve: --port must be between 0 and 65535, got {config.port}", file=sys.stderr)
        return 2
    if config.max_upload_mb <= 0:
        print("loom serve: --max-upload-mb must be positive", file=sys.stderr)
        return 2
    from server.cluster.pool import parse_workers_option

    try:
        parse_workers_option(config.workers)
    except ValueError as e:
        print(f"loom serve: {e}", file=sys.stderr)
        return 2
    if config.worker_cpus is not None and config.worker_cpus < 1:
        print("loom serve: --worker-cpus must be at least 1", file=sys.stderr)
        return 2
    logs = setup_logging(getattr(args, "verbose", False))

    from server.routes_frontend import FrontendMissing, resolve_web_root

    try:
        web_root = resolve_web_root(config.frontend)
    except FrontendMissing as e:
        print(f"loom serve: {e}", file=sys.stderr)
        return 2
    import os

    if config.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        os.environ["LOOM_DEVICE"] = "cpu"
    # The model manager (nodes.diffusion.management) reads these when it is first made.
    model_settings = {"LOOM_LOW_VRAM": "1" if args.lowvram else None, "LOOM_DTYPE": args.precision,
                      "LOOM_VRAM_BUDGET_GB": args.vram_budget, "LOOM_RAM_BUDGET_GB": args.model_ram}
    for name, value in model_settings.items():
        if value is not None:
            os.environ[name] = str(value)

    from nodes import paths

    paths.configure(config.data_dir, config.models_dir, seed_examples=True)
    registry = build_registry(config)
    apply_fast(config)
    try:
        return asyncio.run(serve(config, registry, web_root, logs))
    except KeyboardInterrupt:
        return 0


async def serve(config: ServeConfig, registry, web_root, logs) -> int:
    from aiohttp import web

    from server.app import create_app
    from server.cluster.pool import ClusterError
    from server.context import build_context

    try:
        ctx = build_context(config, registry, logs=logs)  # joins the Ray cluster first with --workers ray
    except ClusterError as e:
        print(f"loom serve: {e}", file=sys.stderr)
        return 1
    app = create_app(ctx, web_root)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        if e.errno == errno.EADDRINUSE:
            print(f"loom serve: port {config.port} on {config.host} is already in use; choose another with --port",
                  file=sys.stderr)
        else:
            print(f"loom serve: cannot listen on {config.host}:{config.port}: {e.strerror or e}", file=sys.stderr)
        return 1
    port = config.port or runner.addresses[0][1]
    host = f"[{config.host}]" if ":" in config.host else config.host
    shown = "127.0.0.1" if config.host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}/"
    print(f"Loom is ready at {url}" + ("  (open it once with ?token=<your token>)" if config.auth_token else ""),
          flush=True)
    log.info("serving %d node types, data in %s", len(registry), ctx.folders.data_dir)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()
    return 0
