"""Queueing and running prompts: /prompt, /queue, /history, /jobs, /interrupt, /free."""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
import uuid

from aiohttp import web

from server.context import ServerContext
from server.http_util import ApiError, Routes, error_body, query_int, read_json
from server.jobs import JOB_STATUSES, QueueItem, split_sensitive

log = logging.getLogger("loom.server")

MAX_PROMPT_ID_LENGTH = 200


def _prompt_error(message: str, type: str, details: str = "") -> ApiError:
    return ApiError(400, message, type, details or message, body={"node_errors": {}})


def _id_list(value, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        raise ApiError(400, f"{what} must be a list of ids")
    return [str(v) for v in value]


def missing_node_providers(registry, prompt: dict) -> dict:
    """Which packs provide the unknown node types of a prompt, where `nodes.pack_index` knows.

    The hook: `nodes.pack_index.packs_providing(class_types: list[str]) -> {class_type: [pack info...]}`.
    """
    missing = sorted({n.get("class_type") for n in prompt.values()
                      if isinstance(n, dict) and isinstance(n.get("class_type"), str)
                      and n.get("class_type") not in registry})
    if not missing:
        return {}
    try:
        pack_index = importlib.import_module("nodes.pack_index")
    except ModuleNotFoundError as e:
        if e.name not in ("nodes.pack_index", "nodes"):
            log.exception("nodes.pack_index failed to import")
        return {}
    lookup = getattr(pack_index, "packs_providing", None)
    if lookup is None:
        return {}
    try:
        found = lookup(missing) or {}
    except Exception:
        log.exception("nodes.pack_index.packs_providing failed")
        return {}
    return {k: v for k, v in found.items() if v}


def on_prompt_handlers(body: dict) -> dict:
    """Let node packs rewrite the request first (PromptServer.add_on_prompt_handler)."""
    try:
        from server import compat_bridge
    except ImportError:
        return body
    out = compat_bridge.trigger_on_prompt(body)
    return out if isinstance(out, dict) else body


def parse_prompt_request(ctx: ServerContext, body: dict) -> dict:
    """Check the request fields (not the graph) and return them normalised."""
    prompt = body.get("prompt")
    if prompt is None:
        raise _prompt_error("No prompt provided", "no_prompt")
    if not isinstance(prompt, dict):
        raise _prompt_error("The prompt must be a JSON object of nodes keyed by id", "invalid_prompt")
    client_id = body.get("client_id")
    if client_id is not None and not isinstance(client_id, str):
        raise _prompt_error("client_id must be a string", "invalid_prompt")
    prompt_id = body.get("prompt_id")
    if prompt_id is None:
        prompt_id = str(uuid.uuid4())
    elif not isinstance(prompt_id, str) or not prompt_id or len(prompt_id) > MAX_PROMPT_ID_LENGTH:
        raise _prompt_error(f"prompt_id must be a non-empty string of at most {MAX_PROMPT_ID_LENGTH} characters",
                            "invalid_prompt")
    elif ctx.queue.is_queued(prompt_id):
        raise _prompt_error(f"prompt_id {prompt_id!r} is already queued", "duplicate_prompt_id")
    number = body.get("number")
    if number is not None and (isinstance(number, bool) or not isinstance(number, (int, float))
                               or number != number or abs(number) == float("inf")):
        raise _prompt_error("number must be a finite number", "invalid_prompt")
    if isinstance(number, int) and not -(2**63) <= number < 2**63:
        # SQLite keeps 64-bit integers; a larger priority is still a valid ordering key as a float
        try:
            number = float(number)
        except OverflowError:
            raise _prompt_error("number is too large", "invalid_prompt") from None
    front = body.get("front", False)
    if not isinstance(front, bool):
        raise _prompt_error("front must be true or false", "invalid_prompt")
    targets = body.get("partial_execution_targets")
    if targets is not None:
        try:
            targets = _id_list(targets, "partial_execution_targets")
        except ApiError as e:
            raise _prompt_error(e.message, "invalid_prompt") from None
    extra_data = body.get("extra_data", {})
    if extra_data is None:
        extra_data = {}
    if not isinstance(extra_data, dict):
        raise _prompt_error("extra_data must be a JSON object", "invalid_prompt")
    return {"prompt": prompt, "client_id": client_id, "prompt_id": prompt_id, "number": number, "front": front,
            "targets": targets, "extra_data": dict(extra_data)}


def add_routes(r: Routes, ctx: ServerContext) -> None:
    from engine.validation import validate_prompt

    registry = ctx.registry
    queue = ctx.queue

    def queue_info() -> dict:
        return {"exec_info": {"queue_remaining": queue.remaining()}}

    @r.get("/prompt")
    async def get_prompt(request: web.Request) -> web.Response:
        return web.json_response(queue_info())

    @r.post("/prompt")
    async def post_prompt(request: web.Request) -> web.Response:
        try:
            body = await read_json(request, default=None)
        except ApiError as e:
            raise _prompt_error(e.message, e.type) from None
        if body is None:
            raise _prompt_error("No prompt provided", "no_prompt")
        body = on_prompt_handlers(body)
        req = parse_prompt_request(ctx, body)
        loop = asyncio.get_running_loop()
        try:
            v = await loop.run_in_executor(None, validate_prompt, registry, req["prompt"], req["targets"])
        except Exception as e:
            log.exception("validation crashed on a prompt")
            raise ApiError(400, f"the prompt could not be validated: {type(e).__name__}: {e}", "internal_error",
                           body={"node_errors": {}}) from None
        if not v.ok:
            error = dict(v.error or error_body("Prompt is invalid", "invalid_prompt"))
            providers = missing_node_providers(registry, req["prompt"])
            if providers:
                error["extra_info"] = {**(error.get("extra_info") or {}), "providers": providers}
            return web.json_response({"error": error, "node_errors": v.node_errors or {}}, status=400)
        extra_data, sensitive = split_sensitive(req["extra_data"])
        if req["client_id"] is not None:
            extra_data["client_id"] = req["client_id"]
        extra_data["create_time"] = int(time.time() * 1000)
        number = req["number"] if req["number"] is not None else queue.next_number(req["front"])
        item = QueueItem(number=number, prompt_id=req["prompt_id"], prompt=req["prompt"], extra_data=extra_data,
                         outputs=list(v.outputs), create_time=extra_data["create_time"], sensitive=sensitive)
        try:
            queue.put(item)
        except KeyError as e:
            raise _prompt_error(str(e.args[0]), "duplicate_prompt_id") from None
        log.info("queued prompt %s (%d nodes, %d outputs, number %s)", item.prompt_id, len(item.prompt),
                 len(item.outputs), number)
        return web.json_response({"prompt_id": item.prompt_id, "number": number, "node_errors": v.node_errors or {}})

    @r.get("/queue")
    async def get_queue(request: web.Request) -> web.Response:
        running, pending = queue.snapshot()
        return web.json_response({"queue_running": [i.as_tuple() for i in running],
                                  "queue_pending": [i.as_tuple() for i in pending]})

    @r.post("/queue")
    async def post_queue(request: web.Request) -> web.Response:
        body = await read_json(request, default={})
        deleted: list[str] = []
        if body.get("clear"):
            deleted += queue.delete(None)
        if "delete" in body:
            deleted += queue.delete(_id_list(body["delete"], "delete"))
        return web.json_response({"deleted": deleted})

    @r.get("/history")
    async def get_history(request: web.Request) -> web.Response:
        max_items = query_int(request, "max_items", minimum=0)
        offset = query_int(request, "offset")
        page = await asyncio.to_thread(ctx.store.history_page, max_items, offset)
        return web.json_response(page)

    @r.get("/history/{prompt_id}")
    async def get_history_item(request: web.Request) -> web.Response:
        pid = request.match_info["prompt_id"]
        item = await asyncio.to_thread(ctx.store.history_get, pid)
        return web.json_response({pid: item} if item is not None else {})

    @r.post("/history")
    async def post_history(request: web.Request) -> web.Response:
        body = await read_json(request, default={})
        if body.get("clear"):
            ctx.store.history_delete(None)
        if "delete" in body:
            ctx.store.history_delete(_id_list(body["delete"], "delete"))
        return web.json_response({})

    @r.get("/jobs")
    async def get_jobs(request: web.Request) -> web.Response:
        raw_status = request.query.get("status")
        statuses = list(JOB_STATUSES)
        if raw_status:
            statuses = [s.strip() for s in raw_status.split(",") if s.strip()]
            unknown = [s for s in statuses if s not in JOB_STATUSES]
            if unknown:
                raise ApiError(400, f"unknown job status {', '.join(unknown)} (known: {', '.join(JOB_STATUSES)})")
        sort_by = request.query.get("sort_by", "created_at")
        if sort_by not in ("created_at", "execution_duration"):
            raise ApiError(400, "sort_by must be created_at or execution_duration")
        sort_order = request.query.get("sort_order", "desc")
        if sort_order not in ("asc", "desc"):
            raise ApiError(400, "sort_order must be asc or desc")
        limit = query_int(request, "limit", minimum=1)
        offset = query_int(request, "offset", 0, minimum=0)
        jobs, total = await asyncio.to_thread(ctx.store.jobs, statuses, request.query.get("workflow_id"), sort_by,
                                              sort_order == "desc", limit, offset)
        return web.json_response({"jobs": jobs, "pagination": {
            "offset": offset, "limit": limit if limit is not None else len(jobs), "total": total,
            "has_more": offset + len(jobs) < total}})

    @r.get("/jobs/{job_id}")
    async def get_job(request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        job = await asyncio.to_thread(ctx.store.job_detail, job_id)
        if job is None:
            raise ApiError(404, f"no job {job_id!r}", "not_found")
        return web.json_response(job)

    def cancel(job_id: str) -> str:
        if queue.delete([job_id]):
            return "removed"
        if ctx.dispatcher.interrupt(job_id):
            return "interrupted"
        if ctx.store.history_get(job_id) is not None:
            return "finished"
        return "not_found"

    @r.post("/jobs/{job_id}/cancel")
    async def cancel_job(request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        outcome = cancel(job_id)
        if outcome == "not_found":
            raise ApiError(404, f"no job {job_id!r}", "not_found")
        if outcome == "finished":
            raise ApiError(409, f"job {job_id!r} has already finished", "conflict")
        return web.json_response({"id": job_id, "cancelled": True, "action": outcome})

    @r.post("/jobs/cancel")
    async def cancel_jobs(request: web.Request) -> web.Response:
        body = await read_json(request, default={})
        ids = next((body[k] for k in ("job_ids", "ids", "prompt_ids") if k in body), None)
        if ids is None:
            raise ApiError(400, "give the jobs to cancel as {\"job_ids\": [...]}")
        results = {job_id: cancel(job_id) for job_id in _id_list(ids, "job_ids")}
        return web.json_response({
            "cancelled": [k for k, v in results.items() if v in ("removed", "interrupted")],
            "not_cancelled": {k: v for k, v in results.items() if v not in ("removed", "interrupted")}})

    @r.post("/interrupt")
    async def post_interrupt(request: web.Request) -> web.Response:
        body = await read_json(request, default={})
        prompt_id = body.get("prompt_id")
        if prompt_id is not None and not isinstance(prompt_id, str):
            raise ApiError(400, "prompt_id must be a string")
        interrupted = ctx.dispatcher.interrupt(prompt_id)
        if interrupted:
            log.info("interrupt requested for %s", ", ".join(interrupted))
        return web.json_response({"interrupted": interrupted})

    @r.post("/free")
    async def post_free(request: web.Request) -> web.Response:
        body = await read_json(request, default={})
        unload, free_memory = bool(body.get("unload_models", False)), bool(body.get("free_memory", False))
        if unload or free_memory:
            ctx.dispatcher.request_free(unload, free_memory)
        return web.json_response({"unload_models": unload, "free_memory": free_memory})
