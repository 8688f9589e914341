"""The run history of a folder, read-only, for the Lab extension's "magnus runs" panel.

Three GET endpoints below the server extension's prefix, authenticated and
authorised as ``/api/contents`` is (server.py's records):

- ``/magnus-jupyter/api/runs?folder=F``: the runs of folder ``F`` (a server
  path, ``""`` for the root), newest first, as ``magnus-jupyter runs --json``
  gives them, plus the logs skipped (``warnings``);
- ``/magnus-jupyter/api/runs/RUN_ID?folder=F``: one run: its row, step rows,
  summary as HTML, its DAG (the widget's picture, replayed from the run log)
  and its timeline (SVG);
- ``/magnus-jupyter/api/diff?folder=F&a=A&b=B``: two runs compared, as data and
  as HTML.

Nothing here writes: not the run logs, not the summary index beside them (it
is read when a listing by the CLI or a notebook left one). Retrying a run is
the notebook's kernel's job (``%magnus_retry``), not the server's.

The folder is checked as server.py checks a record: a plain path below the
root, no hidden part (its record folders ``.run_log_store`` and ``.catalog`` are
the only hidden names read), each part opened with O_NOFOLLOW from the root,
and the record folders themselves no links. Work then goes through the open
folder's descriptor (``/proc/self/fd/N`` on Linux), so a part swapped for a
link after the check leads nowhere else; the run history's reader follows no
link inside the record folders either (history/store.py). Paths in answers are
server paths, never the server's own file system paths.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from .executor.runlog import CATALOG_FOLDER, RUN_LOG_FOLDER, check_run_id, strict_json
from .server import NAME_MAX, RecordRefused, open_folder

ROUTE = "/magnus-jupyter/api"
_FD_PATHS = Path("/proc/self/fd")  # a descriptor as a path (Linux): what is opened stays what is read
_PICTURES: Any = None  # the DAG pictures of runs recently shown, laid out once (pages.RunPictures)


def _shown(path: str) -> str:
    return path if len(path) <= 80 else f"{path[:40]}…{path[-30:]}"


def folder_parts(path: str) -> list[str]:
    """The parts of the run folder ``path`` (``[]``: the server's root); else RecordRefused."""
    where = f"magnus runs: folder {_shown(path)!r}"
    if "\0" in path:
        raise RecordRefused(400, f"{where} contains a NUL byte")
    if path == "":
        return []
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts) or "\\" in path:
        raise RecordRefused(403, f"{where} is not a plain path below the server's root")
    if any(len(os.fsencode(part)) > NAME_MAX for part in parts):
        raise RecordRefused(400, f"{where} has a name longer than {NAME_MAX} bytes")
    if any(part.startswith(".") for part in parts):
        raise RecordRefused(403, f"{where} is hidden: runs are listed for visible folders only")
    return parts


class RunFolderAccess:
    """A checked run folder, open while the work runs: ``where`` (a RunFolder to read from), ``base``
    (the folder as a path, for links); ``relative`` and ``json`` put its paths as server paths."""

    def __init__(self, root: Path, path: str) -> None:
        from .history.store import RunFolder

        self.parts = folder_parts(path)
        self.name = "/".join(self.parts)
        where = f"magnus runs: folder {_shown(self.name)!r}"
        try:
            self.fd = open_folder(root, self.parts, where)
        except RecordRefused as refused:
            if refused.status == 404:
                raise RecordRefused(404, f"{where} is not a folder below the server's root") from None
            if "symlink" in refused.reason:
                raise RecordRefused(403, f"{where} goes through a symlink: runs are listed where no part "
                                         "is a link") from None
            raise
        try:
            for name in (RUN_LOG_FOLDER, CATALOG_FOLDER):
                try:
                    mode = os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mode
                except FileNotFoundError:
                    continue
                if stat.S_ISLNK(mode):
                    raise RecordRefused(403, f"{where}: its {name} is a symlink; runs are listed where "
                                             "no part is a link")
        except BaseException:
            os.close(self.fd)
            raise
        self.root = str(root.resolve())
        plain = Path(self.root).joinpath(*self.parts)
        pinned = _FD_PATHS / str(self.fd)
        self.base = pinned if pinned.is_dir() else plain
        self.where = RunFolder.of(self.base)
        self._prefixes = sorted({str(self.base), str(plain)}, key=len, reverse=True)

    def relative(self, text: str, encode: Callable[[str], str] = str) -> str:
        """``text`` with this folder's file system path (as it is, or HTML-escaped, each ``encode``d)
        put as its server path."""
        for prefix in self._prefixes:
            for form in dict.fromkeys((prefix, html.escape(prefix))):
                for end, into in (("/", f"{self.name}/" if self.name else ""), ("", self.name or ".")):
                    text = text.replace(encode(form + end), encode(into))
        return text

    def path(self, path: str) -> str:
        """A recorded file path as a server path; a file outside the server's root by its name only."""
        shown = self.relative(path)
        if shown.startswith(self.root + "/"):
            return shown[len(self.root) + 1:]
        return os.path.basename(shown) if os.path.isabs(shown) else shown

    def json(self, answer: dict[str, Any]) -> str:
        """``answer`` as strict JSON, with no file system path of this folder in it (in text, in HTML)."""
        return self.relative(strict_json(answer), lambda text: json.dumps(text)[1:-1])

    def close(self) -> None:
        os.close(self.fd)


@contextmanager
def run_folder(root: Path, path: str) -> Iterator[RunFolderAccess]:
    access = RunFolderAccess(root, path)
    try:
        yield access
    finally:
        access.close()


def _pictures() -> Any:
    global _PICTURES
    if _PICTURES is None:
        from .widget.pages import RunPictures

        _PICTURES = RunPictures()
    return _PICTURES


# ---- the answers (plain functions: run in a worker thread) --------------------------------------


def list_answer(root: Path, folder: str) -> str:
    from .history.summary import RUNNING, list_runs

    with run_folder(root, folder) as access:
        warnings: list[str] = []
        rows = list_runs(access.where, warn=warnings.append, save_index=False)
        for row in rows:
            row["pipeline"] = access.path(row["pipeline"])
        return access.json({"folder": access.name, "runs": rows, "warnings": warnings,
                            "running": any(row["status"] == RUNNING for row in rows)})


def _checked_id(run_id: str) -> str:
    from .errors import PipelineError

    try:
        return check_run_id(run_id)
    except PipelineError as exc:
        raise RecordRefused(400, f"magnus runs: {exc}") from None


def run_answer(root: Path, folder: str, run_id: str) -> str:
    from .history.store import RunLogError, find_run
    from .widget.pages import run_detail, summary_html

    _checked_id(run_id)
    with run_folder(root, folder) as access:
        try:
            find_run(run_id, access.where)
        except RunLogError as exc:
            raise RecordRefused(404, access.relative(str(exc))) from None
        try:
            detail = run_detail(run_id, access.where, link_base=access.base, pictures=_pictures())
        except RunLogError as exc:
            raise RecordRefused(422, access.relative(str(exc))) from None
        detail["run"]["pipeline"] = access.path(detail["run"]["pipeline"])
        return access.json({"folder": access.name, **detail,
                            "summary_html": summary_html(detail["run"], detail["steps"])})


def diff_answer(root: Path, folder: str, a: str, b: str) -> str:
    from .history.diff import diff_runs
    from .history.store import RunLogError, find_run, read_run_file
    from .widget.pages import diff_html

    logs = []
    with run_folder(root, folder) as access:
        for run_id in (_checked_id(a), _checked_id(b)):
            try:
                run = find_run(run_id, access.where)
            except RunLogError as exc:
                raise RecordRefused(404, access.relative(str(exc))) from None
            try:
                logs.append(read_run_file(run))
            except RunLogError as exc:
                raise RecordRefused(422, access.relative(str(exc))) from None
        diff = diff_runs(logs[0], logs[1], access.where)
        return access.json({"folder": access.name, "a": a, "b": b, "diff": diff, "html": diff_html(diff)})


# ---- the handlers ------------------------------------------------------------------------------


class _RunsHandler(APIHandler):
    """Read-only JSON; the token and authorizer apply as to /api/contents."""

    auth_resource = "contents"

    def _root(self) -> Path:
        root = getattr(self.contents_manager, "root_dir", None)
        if not root:
            raise web.HTTPError(404, "magnus runs: this server's contents are not files on disk")
        return Path(root)

    async def _answer(self, work: Callable[..., str], *args: str) -> None:
        """Run ``work(root, *args)`` in a worker thread (it reads files, Graphviz draws) and send its JSON."""
        root = self._root()
        try:
            answer = await asyncio.to_thread(work, root, *args)
        except RecordRefused as refused:
            raise web.HTTPError(refused.status, refused.reason) from None
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")  # live status: never a stale copy
        self.finish(answer)


class RunsHandler(_RunsHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self._answer(list_answer, self.get_query_argument("folder", ""))


class RunHandler(_RunsHandler):
    @web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        await self._answer(run_answer, self.get_query_argument("folder", ""), run_id)


class DiffHandler(_RunsHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        a, b = self.get_query_argument("a", ""), self.get_query_argument("b", "")
        if not a or not b:
            raise web.HTTPError(400, "magnus runs: a diff needs two runs: ?a=RUN_ID&b=RUN_ID")
        await self._answer(diff_answer, self.get_query_argument("folder", ""), a, b)


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Route the run history below ``/magnus-jupyter/api/`` on the server."""
    web_app = server_app.web_app
    base = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [(url_path_join(base, ROUTE, "runs"), RunsHandler),
                                 (url_path_join(base, ROUTE, "runs", "([^/]+)"), RunHandler),
                                 (url_path_join(base, ROUTE, "diff"), DiffHandler)])
    server_app.log.info("magnus_jupyter: the run history of a folder read-only at %s/runs", ROUTE)
