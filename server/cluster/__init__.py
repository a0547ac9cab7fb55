"""`loom serve --workers ray`: the prompt queue runs on Loom workers in a Ray cluster.

- `pool.py`: joins the cluster, creates or re-attaches one worker actor per GPU (or per N CPUs), keeps
  the set current, refuses a worker whose manifest differs from the server's.
- `actor.py`: the worker itself (an engine, a model manager and an output cache, inside a Ray actor).
- `remote_worker.py`: the dispatcher's `Worker` for one actor: streams its events, brings its files back.
- `files.py`: input files to the worker, output files back (renamed where two workers chose one name).
- `manifest.py`: what a machine offers (models, node packs, node types) and how two of them differ.
- `local_cluster.py`: a loopback cluster of several nodes on one machine (tests, benchmark, trying it out).

Ray is imported only here and only with `--workers ray`; the default `--workers local` never loads it.
"""
