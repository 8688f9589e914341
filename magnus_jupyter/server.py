"""The Jupyter server side of the DAG widget's links: magnus records, read-only, in a default server.

Runs keep executed notebooks and logs in the hidden folders ``.catalog/<run_id>/`` and
``.run_log_store/`` (magnus' layout). A default server's contents API refuses hidden paths,
so Lab could not open them without ``--ContentsManager.allow_hidden=True``. This extension
serves those two folders only, read-only, as contents-API models
(GET ``/magnus-jupyter/api/contents/<path>``), and leaves the server's hidden-file policy
alone: every other hidden path stays refused. The lab extension's "magnus" drive reads it.
"""

from __future__ import annotations

import base64
import json
import mimetypes
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

# The hidden folders magnus writes its records to; no other hidden folder is served.
RECORD_FOLDERS = frozenset({".catalog", ".run_log_store"})
ROUTE = "/magnus-jupyter/api/contents"


class RecordRefused(Exception):
    """A path this extension will not serve: (HTTP status, reason in words)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _in_record_folder(parts: Sequence[str]) -> bool:
    hidden = [part for part in parts if part.startswith(".")]
    return bool(hidden) and all(part in RECORD_FOLDERS for part in hidden)


def record_path(root: Path, path: str) -> Path:
    """The file of server path ``path`` under ``root``, if it is a magnus record; else RecordRefused.

    A record is a path below the root, without ``.``/``..`` parts, whose hidden parts are all
    magnus record folders (at least one), and that stays below the root once symlinks resolve.
    """
    parts = path.split("/")
    where = f"magnus records: {path!r}"
    if not path or path.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise RecordRefused(403, f"{where} is not a plain path below the server's root")
    if not _in_record_folder(parts):
        raise RecordRefused(403, f"{where} is not in a .catalog or .run_log_store folder")
    base = root.resolve()
    target = (base / Path(*parts)).resolve()
    if not target.is_relative_to(base):
        raise RecordRefused(403, f"{where} leads outside the server's root (a symlink)")
    if not _in_record_folder(target.relative_to(base).parts):
        raise RecordRefused(403, f"{where} leads out of the record folders (a symlink)")
    if not target.is_file():
        raise RecordRefused(404, f"{where} is not a file (runs write their records there)")
    return base / Path(*parts)


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat()


def record_model(root: Path, path: str, content: bool = True) -> dict[str, Any]:
    """The contents-API model of a record (the shape of ``/api/contents/<path>``), never writable."""
    file = record_path(root, path)
    stat = file.stat()
    notebook = file.suffix == ".ipynb"
    model: dict[str, Any] = {
        "name": file.name,
        "path": path,
        "type": "notebook" if notebook else "file",
        "writable": False,  # a record of what ran: the drive refuses saves too
        "created": _stamp(stat.st_ctime),
        "last_modified": _stamp(stat.st_mtime),
        "size": stat.st_size,
        "mimetype": None,
        "content": None,
        "format": None,
    }
    if not content:
        return model
    if notebook:
        try:
            nb = nbformat.read(file, as_version=4)
        except (OSError, ValueError) as exc:  # nbformat's read errors are ValueErrors
            raise RecordRefused(400, f"magnus records: {path!r} is not a readable notebook: {exc}") from exc
        model.update(content=nb, format="json")
        return model
    data = file.read_bytes()
    try:
        model.update(content=data.decode("utf-8"), format="text", mimetype="text/plain")
    except UnicodeDecodeError:
        guessed = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        model.update(content=base64.b64encode(data).decode("ascii"), format="base64", mimetype=guessed)
    return model


class RecordHandler(APIHandler):
    """GET a magnus record as a contents model; the token and authorizer apply as to /api/contents."""

    auth_resource = "contents"

    @web.authenticated
    @authorized
    async def get(self, path: str) -> None:
        root = getattr(self.contents_manager, "root_dir", None)
        if not root:
            raise web.HTTPError(404, "magnus records: this server's contents are not files on disk")
        want = self.get_query_argument("content", "1") not in ("0", "false")
        try:
            model = record_model(Path(root), path.strip("/"), content=want)
        except RecordRefused as refused:
            raise web.HTTPError(refused.status, refused.reason) from None
        if model["type"] == "notebook" and model["content"] is not None:
            # the server's notary decides trust, as for /api/contents (outputs: untrusted unless signed)
            self.contents_manager.mark_trusted_cells(model["content"], model["path"])
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(model, default=str))


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Route ``/magnus-jupyter/api/contents/<path>`` on the server."""
    web_app = server_app.web_app
    route = url_path_join(web_app.settings["base_url"], ROUTE, "(.+)")
    web_app.add_handlers(".*$", [(route, RecordHandler)])
    server_app.log.info("magnus_jupyter: run records (.catalog/, .run_log_store/) read-only at %s", ROUTE)
