"""`loom workers list|stop`: the Loom workers of a Ray cluster (they outlive `loom serve` on purpose,
so a restarted server finds them warm; this is how they are looked at and stopped)."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("workers", help="list or stop the Loom workers of a Ray cluster",
                              description="List or stop the Loom workers (Ray actors) that `loom serve --workers ray` "
                                          "started. They keep running when the server stops.")
    p.add_argument("action", choices=("list", "stop"))
    p.add_argument("--address", default="auto", help="the Ray cluster (default 'auto': the one on this machine)")
    p.add_argument("--ray-namespace", default="loom", metavar="NAME", help="the server's namespace (default 'loom')")
    return p


def run(args: argparse.Namespace) -> int:
    try:
        import ray
    except ImportError:
        print("loom workers: Ray is not installed (pip install 'loom[ray]')", file=sys.stderr)
        return 2
    try:
        ray.init(address=args.address, namespace=args.ray_namespace, log_to_driver=False, configure_logging=False)
    except Exception as e:
        print(f"loom workers: could not join the Ray cluster at {args.address}: {e}", file=sys.stderr)
        return 1
    try:
        names = sorted(e["name"] for e in ray.util.list_named_actors(all_namespaces=True)
                       if e["namespace"] == args.ray_namespace and e["name"].startswith("loom-"))
        if not names:
            print(f"no Loom workers in namespace {args.ray_namespace!r}")
            return 0
        for name in names:
            actor = ray.get_actor(name, namespace=args.ray_namespace)
            if args.action == "stop":
                ray.kill(actor)
                print(f"stopped {name}")
                continue
            try:
                info = ray.get(actor.info.remote(), timeout=10)
                stats = ray.get(actor.stats.remote(), timeout=10)
                models = ", ".join(stats.get("models") or {}) or "no models"
                running = stats.get("running") or "idle"
                print(f"{name}  pid {info['pid']} on {info['host']}  {running}  {models}")
            except Exception as e:  # restarting, or its node is gone
                print(f"{name}  not answering ({type(e).__name__})")
        return 0
    finally:
        ray.shutdown()
