"""The Jupyter server side of the DAG widget's links: magnus records, read-only, in a default server.

Runs keep executed notebooks and logs in the hidden folders ``.catalog/<run_id>/`` and
``.run_log_store/`` (magnus' layout). A default server's contents API refuses hidden paths,
so Lab could not open them without ``--ContentsManager.allow_hidden=True``. This extension
serves those two folders only, read-only, as contents-API models
(GET ``/magnus-jupyter/api/contents/<path>``), and leaves the server's hidden-file policy
alone: every other hidden path stays refused. The lab extension's "magnus" drive reads it.

A record is opened once, part by part below the root and never through a symlink, and what
is served is read from that one descriptor: a file swapped for a link between a check and a
read cannot be served. Records up to ``MAX_RECORD_BYTES`` are served; logs and other files
are streamed in chunks, so serving one costs the server a chunk, not the file.
"""

from __future__ import annotations

import base64
import codecs
import errno
import io
import json
import math
import mimetypes
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.iostream import StreamClosedError

# The hidden folders magnus writes its records to; no other hidden folder is served.
RECORD_FOLDERS = frozenset({".catalog", ".run_log_store"})
ROUTE = "/magnus-jupyter/api/contents"
# The largest record served (413 above it): a notebook is parsed whole to check its trust.
MAX_RECORD_BYTES = 64 * 1024 * 1024
# How deeply a record notebook's JSON may nest; deeper ones are refused before they exhaust the stack.
MAX_NOTEBOOK_DEPTH = 100
NAME_MAX = 255  # bytes in one file name (Linux, macOS)
CHUNK = 1024 * 1024  # bytes read and written at a time
B64_CHUNK = CHUNK - CHUNK % 3  # base64 of whole 3-byte groups: the pieces join into one valid string

_ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FOLDER_FLAGS = _ROOT_FLAGS | os.O_NOFOLLOW
# O_NONBLOCK: opening a FIFO planted in a record folder must not block the server.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class RecordRefused(Exception):
    """A path this extension will not serve: (HTTP status, reason in words)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _where(path: str) -> str:
    """The start of every reason: the path, cut short so a hostile one keeps the line short."""
    shown = path if len(path) <= 80 else f"{path[:40]}…{path[-30:]}"
    return f"magnus records: {shown!r}"


def _in_record_folder(parts: Sequence[str]) -> bool:
    hidden = [part for part in parts if part.startswith(".")]
    return bool(hidden) and all(part in RECORD_FOLDERS for part in hidden)


def _too_long(part: str) -> bool:
    try:
        return len(os.fsencode(part)) > NAME_MAX
    except UnicodeError:
        return True  # not a name the file system could hold either


def record_parts(path: str) -> list[str]:
    """The parts of server path ``path`` if it names a magnus record; else RecordRefused.

    A record is a path below the root, without ``.``/``..`` parts, whose hidden parts are all
    magnus record folders (at least one).
    """
    where = _where(path)
    if "\0" in path:
        raise RecordRefused(400, f"{where} contains a NUL byte")
    parts = path.split("/")
    if not path or path.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise RecordRefused(403, f"{where} is not a plain path below the server's root")
    if any(_too_long(part) for part in parts):
        raise RecordRefused(400, f"{where} has a name longer than {NAME_MAX} bytes")
    if not _in_record_folder(parts):
        raise RecordRefused(403, f"{where} is not in a .catalog or .run_log_store folder")
    return parts


def _refusal(where: str, folder: int, name: str, error: OSError) -> RecordRefused:
    """Why ``name`` in the open ``folder`` did not open; a symlink is said to be one.

    O_NOFOLLOW fails with ELOOP on a symlink (EMLINK on FreeBSD); with O_DIRECTORY, Linux says
    ENOTDIR instead, so a folder is looked at again for the words only.
    """
    link = error.errno in (errno.ELOOP, errno.EMLINK)
    if not link:
        with suppress(OSError):
            link = stat.S_ISLNK(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    if link:
        return RecordRefused(403, f"{where} goes through a symlink: records are served as runs wrote them")
    if error.errno in (errno.EACCES, errno.EPERM):
        return RecordRefused(403, f"{where} is not readable by the server")
    return RecordRefused(404, f"{where} is not a file (runs write their records there)")


def open_record(root: Path, path: str) -> tuple[int, os.stat_result]:
    """An open descriptor of the record ``path`` below ``root`` and its stat; else RecordRefused.

    Each part is opened relative to its folder's descriptor with O_NOFOLLOW, so no part is a
    symlink and the file is the one the path names below the root when it was opened; the
    caller reads only this descriptor and closes it.
    """
    parts = record_parts(path)
    where = _where(path)
    try:
        folder = os.open(root.resolve(), _ROOT_FLAGS)  # the root itself is the server's choice
    except OSError as error:
        reason = f"magnus records: the server's root is not readable ({error.strerror})"
        raise RecordRefused(404, reason) from None
    try:
        for name in parts[:-1]:
            try:
                inner = os.open(name, _FOLDER_FLAGS, dir_fd=folder)
            except OSError as error:
                raise _refusal(where, folder, name, error) from None
            os.close(folder)
            folder = inner
        try:
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=folder)
        except OSError as error:
            raise _refusal(where, folder, parts[-1], error) from None
    finally:
        os.close(folder)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise RecordRefused(404, f"{where} is not a file (runs write their records there)")
    if info.st_size > MAX_RECORD_BYTES:
        os.close(fd)
        raise RecordRefused(413, f"{where} is {info.st_size / 2**20:.0f} MB; records are served up to "
                                 f"{MAX_RECORD_BYTES >> 20} MB")
    return fd, info


def _blocks(fd: int, size: int, block: int) -> Iterator[bytes]:
    """The next ``size`` bytes of ``fd`` in blocks of ``block`` bytes (the last one shorter)."""
    left = size
    while left > 0:
        data = bytearray()
        while len(data) < min(block, left):
            more = os.read(fd, min(block, left) - len(data))
            if not more:
                break  # the file shrank since it was checked: serve what is there
            data += more
        if not data:
            return
        left -= len(data)
        yield bytes(data)


def _is_utf8(fd: int, size: int) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for data in _blocks(fd, size, CHUNK):
            decoder.decode(data)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    finally:
        os.lseek(fd, 0, os.SEEK_SET)
    return True


def _text_pieces(fd: int, size: int) -> Iterator[str]:
    """The file as the inside of one JSON string, a chunk at a time (UTF-8 decoded across chunk ends)."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")  # a file rewritten since the check stays JSON
    for data in _blocks(fd, size, CHUNK):
        yield json.dumps(decoder.decode(data), ensure_ascii=False)[1:-1]
    yield json.dumps(decoder.decode(b"", final=True), ensure_ascii=False)[1:-1]


def _base64_pieces(fd: int, size: int) -> Iterator[str]:
    for data in _blocks(fd, size, B64_CHUNK):
        yield base64.b64encode(data).decode("ascii")


def _depth(value: Any) -> int:
    """How deeply lists and dicts nest in ``value``, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((inner, level + 1) for inner in (item.values() if isinstance(item, dict) else item))
    return deepest


def _read(fd: int, size: int) -> bytearray:
    """The first ``size`` bytes of ``fd``, read into one buffer (no second copy of a big notebook)."""
    buffer = bytearray(size)
    got = 0
    with memoryview(buffer) as view, io.FileIO(fd, closefd=False) as file:
        while got < size:
            count = file.readinto(view[got:])
            if not count:
                break  # the file shrank since it was checked: serve what is there
            got += count
    del buffer[got:]
    return buffer


def read_notebook(fd: int, size: int, path: str) -> nbformat.NotebookNode:
    """The record notebook read from ``fd`` as nbformat v4; RecordRefused (400) when it is not one.

    As nbformat.reads, without its schema validation (a record is shown as it is, not judged),
    and each intermediate dropped as soon as the next exists: parsing holds a few times the file.
    """
    where = _where(path)
    try:
        text = _read(fd, size).decode("utf-8")
        raw = json.loads(text, parse_constant=str, parse_float=_finite_or_text)  # strict JSON out
        del text
        major, minor = nbformat.reader.get_version(raw)
        if major not in nbformat.versions:
            raise ValueError(f"nbformat {major} is not one nbformat knows")
        notebook = nbformat.convert(nbformat.versions[major].to_notebook_json(raw, minor=minor), 4)
    except RecursionError:
        notebook = None
    except (ValueError, KeyError, TypeError, AttributeError) as error:  # JSON and nbformat errors
        reason = (str(error).splitlines() or [type(error).__name__])[0][:100]
        raise RecordRefused(400, f"{where} is not a readable notebook: {reason}") from None
    if notebook is None or _depth(notebook) > MAX_NOTEBOOK_DEPTH:
        raise RecordRefused(400, f"{where} nests deeper than {MAX_NOTEBOOK_DEPTH} levels: not served")
    return notebook


def _finite_or_text(literal: str) -> float | str:
    """A number browsers' JSON.parse can read back, else its text (``1e999`` is infinity)."""
    value = float(literal)
    return value if math.isfinite(value) else literal


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat()


def record_model(path: str, info: os.stat_result) -> dict[str, Any]:
    """The contents-API model of a record without its content (the shape of ``/api/contents/<path>``)."""
    name = path.rsplit("/", 1)[-1]
    return {
        "name": name,
        "path": path,
        "type": "notebook" if name.endswith(".ipynb") else "file",
        "writable": False,  # a record of what ran: the drive refuses saves too
        "created": _stamp(info.st_ctime),
        "last_modified": _stamp(info.st_mtime),
        "size": info.st_size,
        "mimetype": None,
        "format": None,
        "content": None,
    }


class RecordHandler(APIHandler):
    """GET a magnus record as a contents model; the token and authorizer apply as to /api/contents."""

    auth_resource = "contents"

    @web.authenticated
    @authorized
    async def get(self, path: str) -> None:
        root = getattr(self.contents_manager, "root_dir", None)
        if not root:
            raise web.HTTPError(404, "magnus records: this server's contents are not files on disk")
        path = path.strip("/")
        want = self.get_query_argument("content", "1") not in ("0", "false")
        try:
            fd, info = open_record(Path(root), path)
        except RecordRefused as refused:
            raise web.HTTPError(refused.status, refused.reason) from None
        try:
            model = record_model(path, info)
            self.set_header("Content-Type", "application/json")
            if not want:
                self.finish(json.dumps(model))
            elif model["type"] == "notebook":
                await self._send_notebook(model, fd, info.st_size)
            else:
                await self._send_file(model, fd, info.st_size)
        except StreamClosedError:
            pass  # the client went away mid-record: nothing to answer
        finally:
            os.close(fd)

    async def _send_notebook(self, model: dict[str, Any], fd: int, size: int) -> None:
        try:
            notebook = read_notebook(fd, size, model["path"])
        except RecordRefused as refused:
            raise web.HTTPError(refused.status, refused.reason) from None
        # the server's notary decides trust, as for /api/contents (outputs: untrusted unless signed)
        self.contents_manager.mark_trusted_cells(notebook, model["path"])
        model.update(content=notebook, format="json")
        # the encoder's pieces, gathered to a chunk: never the whole notebook as one string
        pending: list[str] = []
        gathered = 0
        for piece in json.JSONEncoder().iterencode(model):
            pending.append(piece)
            gathered += len(piece)
            if gathered >= CHUNK:
                await self._send("".join(pending))
                pending, gathered = [], 0
        self.finish("".join(pending))

    async def _send_file(self, model: dict[str, Any], fd: int, size: int) -> None:
        if _is_utf8(fd, size):
            model.update(format="text", mimetype="text/plain")
            pieces = _text_pieces(fd, size)
        else:
            guessed = mimetypes.guess_type(model["name"])[0] or "application/octet-stream"
            model.update(format="base64", mimetype=guessed)
            pieces = _base64_pieces(fd, size)
        del model["content"]  # streamed after the rest, as the last key
        await self._send(json.dumps(model)[:-1] + ', "content": "')
        for piece in pieces:
            await self._send(piece)
        self.finish('"}')

    async def _send(self, text: str) -> None:
        """Write and wait until it left: the server holds one chunk of a record at a time."""
        self.write(text)
        await self.flush()


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Route ``/magnus-jupyter/api/contents/<path>`` on the server."""
    web_app = server_app.web_app
    route = url_path_join(web_app.settings["base_url"], ROUTE, "(.+)")
    web_app.add_handlers(".*$", [(route, RecordHandler)])
    server_app.log.info("magnus_jupyter: run records (.catalog/, .run_log_store/) read-only at %s", ROUTE)
