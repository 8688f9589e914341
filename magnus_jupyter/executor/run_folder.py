"""The run folder as a task on a Dask worker sees it: what travels to the worker and what comes back.

A task on a worker runs in a copy of the run folder, and what it changed there
is applied to the run folder afterwards, so it sees what a local task sees:
files with their permission bits, folders (empty ones too), symlinks that stay
inside the folder (sent as links; an absolute one becomes relative), and then
what it created, overwrote, chmod-ed or removed. Left out: hidden names,
``__pycache__``, ``node_modules``, files over 256 MB, and symlinks that lead
out of the folder (never followed, so a worker never gets a file from outside
the project; a link a task makes out of its folder does not come back).
Applying never writes through a symlink the task was not sent, and removing
removes only what the task was sent: what stayed behind is kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import stat
import uuid

FILE, DIR, LINK = "file", "folder", "symlink"
SKIP_DIRS = frozenset({"__pycache__", "node_modules"})
MAX_FILE = 256 << 20  # bytes: larger files do not travel (a data lake belongs in a shared store)
# A file written this close to a stat can change again within the file system's clock tick, keeping its
# size and mtime (git's "racily clean" files): its content must be read, not taken from the stat.
_RACY_NS = 2_000_000_000


@dataclasses.dataclass(frozen=True)
class Entry:
    """A file, folder or symlink of the run folder."""

    kind: str
    mode: int = 0  # permission bits of a file or folder
    size: int = 0
    mtime_ns: int = 0
    inode: int = 0
    target: str = ""  # a symlink's target, relative to its folder
    digest: str = ""  # a file's sha256, where known

    def same_stat(self, other: Entry) -> bool:
        return (self.size, self.mtime_ns, self.inode) == (other.size, other.mtime_ns, other.inode)


Tree = dict[str, Entry]  # relative path -> entry


@dataclasses.dataclass
class Changes:
    """What a task did to its folder: entries to make or replace (a file's data ``None``: only its mode
    changed), paths it removed, and the symlinks it made that lead out of the folder (not brought back)."""

    written: dict[str, tuple[Entry, bytes | None]] = dataclasses.field(default_factory=dict)
    removed: list[str] = dataclasses.field(default_factory=list)
    outside: list[str] = dataclasses.field(default_factory=list)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def settled(entry: Entry, since_ns: int) -> bool:
    """Whether a file that still has ``entry``'s stat still has the content it had at ``since_ns``."""
    return entry.mtime_ns < since_ns - _RACY_NS


def scan(root: str) -> tuple[Tree, list[str]]:
    """What of ``root`` travels, by relative path; and the symlinks left out as leading outside it."""
    real_root = os.path.realpath(root)
    tree: Tree = {}
    outside: list[str] = []
    folders = [""]
    while folders:
        folder = folders.pop()
        try:
            items = list(os.scandir(os.path.join(real_root, folder)))
        except OSError:
            continue
        for item in items:
            if item.name.startswith("."):
                continue
            relative = os.path.join(folder, item.name)
            try:
                st = item.stat(follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    target = _inside_target(real_root, relative, os.readlink(item.path))
                    if target is None:
                        outside.append(relative)
                    else:
                        tree[relative] = Entry(LINK, target=target)
                elif stat.S_ISDIR(st.st_mode) and item.name not in SKIP_DIRS:
                    tree[relative] = Entry(DIR, stat.S_IMODE(st.st_mode))
                    folders.append(relative)
                elif stat.S_ISREG(st.st_mode) and st.st_size <= MAX_FILE:
                    tree[relative] = Entry(FILE, stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns,
                                           st.st_ino)
            except OSError:
                continue
    return tree, sorted(outside)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _inside_target(real_root: str, relative: str, text: str) -> str | None:
    """The target of the symlink ``relative`` to recreate it elsewhere: ``text`` if it is relative and
    stays under the folder, else the resolved target relative to the link's folder; ``None`` if the link,
    followed to its end (through other links too), leads out of ``real_root``."""
    here = os.path.join(real_root, relative)
    try:
        resolved = os.path.realpath(here)
    except (OSError, ValueError):
        return None
    if not _within(resolved, real_root):
        return None
    lexical = os.path.normpath(os.path.join(os.path.dirname(relative), text))
    if not os.path.isabs(text) and lexical != os.pardir and not lexical.startswith(os.pardir + os.sep):
        return text
    return os.path.relpath(resolved, os.path.dirname(here))


def build(root: str, tree: Tree, contents: dict[str, bytes]) -> Tree:
    """Make ``tree`` in the empty folder ``root`` (on a worker): files with their bits and mtimes, so an
    untouched file keeps its stat. Returns ``root``'s own tree, with ``tree``'s digests."""
    for relative, entry in sorted(tree.items()):  # a folder sorts before what is in it
        path = os.path.join(root, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if entry.kind == DIR:
            os.makedirs(path, exist_ok=True)
        elif entry.kind == LINK:
            os.symlink(entry.target, path)
        elif relative in contents:
            write_file(path, contents[relative], entry.mode)
            os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns))
    _set_folder_modes(root, {r: e.mode for r, e in tree.items() if e.kind == DIR})
    made, _ = scan(root)
    return {r: dataclasses.replace(e, digest=tree[r].digest) if r in tree else e for r, e in made.items()}


def changes(root: str, before: Tree, since_ns: int) -> Changes:
    """What the task changed in ``root`` since it was ``before`` (at ``since_ns``, file digests known)."""
    after, outside = scan(root)
    found = Changes(outside=outside)
    for relative, old in before.items():
        new = after.get(relative)
        if new is None or new.kind != old.kind or (new.kind == LINK and new.target != old.target):
            found.removed.append(relative)  # a retargeted link is removed and made again
    for relative, new in after.items():
        old = before.get(relative)
        if new.kind != FILE:
            if old is None or old.kind != new.kind or old.mode != new.mode or old.target != new.target:
                found.written[relative] = (new, None)
            continue
        data: bytes | None = None
        if old is None or old.kind != FILE or not (old.same_stat(new) and settled(old, since_ns)):
            try:
                with open(os.path.join(root, relative), "rb") as handle:
                    data = handle.read()
            except OSError:
                continue
            if old is not None and old.kind == FILE and digest(data) == old.digest:
                data = None
        if data is not None or old is None or old.kind != FILE or old.mode != new.mode:
            found.written[relative] = (new, data)
    return found


def apply(root: str, done: Changes) -> list[str]:
    """Make ``done`` so in the run folder ``root``; one note for each change that could not be made."""
    real_root = os.path.realpath(root)
    notes = [f"symlink '{r}' the task made leads out of its folder: not brought back" for r in done.outside]
    for relative in sorted(done.removed, key=lambda r: r.count(os.sep), reverse=True):  # deepest first
        path = _place(real_root, relative)
        if path is None:
            notes.append(f"'{relative}' the task removed is kept: a symlink the task was not sent is on "
                         f"its way")
            continue
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                os.unlink(path)
            elif os.listdir(path):
                notes.append(f"folder '{relative}' the task removed is kept: it holds files the task "
                             f"was not sent")
            else:
                os.rmdir(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            notes.append(f"'{relative}' the task removed is kept: {exc.strerror}")
    modes: dict[str, int] = {}
    for relative, (entry, data) in sorted(done.written.items()):  # a folder before what is in it
        path = _place(real_root, relative)
        if path is None:
            notes.append(f"'{relative}' is not written: a symlink the task was not sent is on its way")
            continue
        try:
            here = os.lstat(path)
        except FileNotFoundError:
            here = None
        if here is not None and stat.S_ISLNK(here.st_mode):
            notes.append(f"'{relative}' is not written: the run folder has a symlink there the task "
                         f"was not sent")
            continue
        try:
            if entry.kind == DIR:
                os.makedirs(path, exist_ok=True)
                os.chmod(path, entry.mode | stat.S_IRWXU)  # writable until what is in it is written
                modes[relative] = entry.mode
            elif entry.kind == LINK:
                temporary = _temporary(path)
                os.symlink(entry.target, temporary)
                try:
                    os.replace(temporary, path)
                except OSError:
                    os.unlink(temporary)
                    raise
            elif data is not None:
                write_file(path, data, entry.mode)
            elif here is not None and stat.S_ISREG(here.st_mode):
                os.chmod(path, entry.mode)
        except OSError as exc:
            notes.append(f"'{relative}' is not written: {exc.strerror}")
    _set_folder_modes(real_root, modes)
    return notes


def _place(real_root: str, relative: str) -> str | None:
    """Where ``relative`` is in the run folder, if no symlink is on the way there (nor ``..``)."""
    path = os.path.normpath(os.path.join(real_root, relative))
    parent = os.path.dirname(path)
    if not _within(parent, real_root) or path == real_root or os.path.realpath(parent) != parent:
        return None
    return path


def _set_folder_modes(root: str, modes: dict[str, int]) -> None:
    """Deepest first, so a read-only folder is made read-only after what is in it was written."""
    for relative in sorted(modes, key=lambda r: r.count(os.sep), reverse=True):
        path = os.path.join(root, relative)
        with contextlib.suppress(OSError):
            if stat.S_ISDIR(os.lstat(path).st_mode):
                os.chmod(path, modes[relative])


def _temporary(path: str) -> str:
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")


def write_file(path: str | os.PathLike[str], data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` atomically (a concurrent reader sees the old file or the new one, never half),
    with permission bits ``mode`` (default: as the umask makes them)."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = _temporary(path)
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def remove(root: str) -> None:
    """Remove a worker's task folder, read-only folders the task made included."""
    with contextlib.suppress(OSError):
        os.chmod(root, stat.S_IRWXU)
    for folder, dirs, _ in os.walk(root):
        for name in dirs:
            with contextlib.suppress(OSError):
                path = os.path.join(folder, name)
                if not os.path.islink(path):
                    os.chmod(path, stat.S_IRWXU)
    shutil.rmtree(root, ignore_errors=True)
