"""The sandbox's output host: ``/cdn/outputs/<id>_<i>.png`` (generated PNGs) and
``/cdn/uploads/<name>`` (files given to ``POST /api/v3/files/upload``). No auth, like a CDN.

Outputs exist only once their task has completed, and stop working when a v3 task is deleted.
Once their links have been expired (``Sandbox.expire_outputs``), a URL handed out before
answers 403 "Request has expired", as a signed URL does; the task's next GET gives working ones.
"""

from __future__ import annotations

from aiohttp import web

from get3w_cli.sandbox.common import runtime_of
from get3w_cli.sandbox.png import make_png
from get3w_cli.sandbox.state import Phase


def _not_found() -> web.Response:
    return web.json_response({"code": 404, "error": "Not found"}, status=404)


async def output(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    name = request.match_info["name"]
    stem, dot, ext = name.rpartition(".")
    task_id, _, index = stem.rpartition("_")
    task = runtime.store.get(task_id)
    if not dot or ext != "png" or task is None or not index.isdigit():
        return _not_found()
    if task.deleted or task.phase(runtime.store.now()) is not Phase.COMPLETED:
        return _not_found()
    if int(index) >= task.controls.outputs:
        return _not_found()
    if request.query.get("v", "") != (str(task.url_version) if task.url_version else ""):
        return web.json_response({"code": 403, "error": "Request has expired"}, status=403)
    body = make_png(name, pad_to=task.controls.output_bytes)
    return web.Response(body=body, content_type="image/png")


async def uploaded(request: web.Request) -> web.Response:
    found = runtime_of(request).uploads.get(request.match_info["name"])
    if found is None:
        return _not_found()
    data, content_type = found
    return web.Response(body=data, content_type=content_type)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/cdn/outputs/{name}", output)
    app.router.add_get("/cdn/uploads/{name}", uploaded)
