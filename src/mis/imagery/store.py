"""Where image stores live and how they are opened and written: a local directory or any
fsspec URL (``s3://``, ``memory://``...), the one module that knows the difference.

Every reader and writer of an OME-Zarr image store (:mod:`mis.imagery.omezarr`,
:mod:`mis.imagery.layout`, :mod:`mis.imagery.upgrade`, the label sets and prediction
runs of :mod:`mis.segment`) opens stores and publishes new groups through these
functions, so that "is this a URL", "what is its canonical name" and "write it under a
hidden name, then rename it into place" are answered once.

Atomicity: new stores (:class:`StoreDestination`) and new groups inside a store
(:func:`publish_group`) are written under a hidden temporary sibling
(``.<name>.<kind>-<pid>-<id>``) and renamed into place only when complete, so a reader
never sees a half-written one; the pid lets a later writer remove the leftovers of a
process killed hard (:func:`sweep`). On object storage the final "rename" is a copy +
delete and is not atomic; only local directories (and fsspec ``memory://``) are tested.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "StoreDestination",
    "StoreFs",
    "canonical_uri",
    "children",
    "is_url",
    "open_group",
    "open_read_store",
    "process_alive",
    "publish_group",
    "remove_store",
    "sweep",
    "temp_tag",
]

_TEMP = re.compile(r"^\..+\.(?:upgrade|old|partial)-(\d+)-[0-9a-f]+$")


def is_url(uri: str | Path) -> bool:
    """True for an fsspec URL (``s3://...``); a plain path or ``file://`` is local."""
    return isinstance(uri, str) and "://" in uri and not uri.startswith("file://")


def canonical_uri(uri: str | Path) -> str:
    """The canonical form of a store location: absolute local path, or URL without '/'."""
    s = str(uri)
    if is_url(s):
        return s.rstrip("/")
    return str(Path(s.removeprefix("file://")).expanduser().absolute())


def temp_tag() -> str:
    """``<pid>-<random>``: unique per writer, and the pid tells a stale temporary."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:10]}"


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a temporary of a live writer is left alone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def open_read_store(uri: str | Path) -> Any:
    """A read-only zarr store for an image store; a local one must hold ``zarr.json``
    (a clear error rather than zarr's generic one for a wrong path)."""
    if is_url(uri):
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(str(uri), read_only=True)
    from zarr.storage import LocalStore

    p = Path(str(uri).removeprefix("file://")).expanduser()
    if not (p / "zarr.json").is_file():
        raise FileNotFoundError(f"not an OME-Zarr image store (no zarr.json): {p}")
    return LocalStore(p, read_only=True)


#: How :func:`open_group` opens a group (zarr's access modes).
AccessMode = Literal["r", "r+", "a", "w", "w-"]


def open_group(uri: str, path: str = "", mode: AccessMode = "r") -> Any:
    """A zarr v3 group inside an image store (local directory or fsspec URL)."""
    import zarr

    uri = canonical_uri(uri)
    if is_url(uri):
        from zarr.storage import FsspecStore

        store: Any = FsspecStore.from_url(uri, read_only=(mode == "r"))
    else:
        from zarr.storage import LocalStore

        store = LocalStore(uri, read_only=(mode == "r"))
    return zarr.open_group(store, mode=mode, path=path or None, zarr_format=3)


def children(uri: str, path: str) -> list[str]:
    """Names of the complete (``zarr.json`` present), visible sub-groups of a folder of
    the store: temporary ``.name.partial-*`` siblings are never listed."""
    uri = canonical_uri(uri)
    if is_url(uri):
        import fsspec

        fs, root = fsspec.core.url_to_fs(uri)
        base = f"{root}/{path}"
        if not fs.isdir(base):
            return []
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(base, detail=False)]
        return sorted(n for n in names if not n.startswith(".") and fs.exists(f"{base}/{n}/zarr.json"))
    folder = Path(uri) / path
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if not p.name.startswith(".") and (p / "zarr.json").is_file())


def remove_store(uri: str) -> None:
    """Remove a store (or a folder inside one, given as ``<store>/<path>``); absent is fine."""
    if is_url(uri):
        import fsspec

        fs, path = fsspec.core.url_to_fs(uri)
        if fs.exists(path):
            fs.rm(path, recursive=True)
    else:
        shutil.rmtree(uri.removeprefix("file://"), ignore_errors=True)


class StoreFs:
    """The few directory operations on the folders of a store that writers need, on a
    local path or an fsspec URL (paths relative to the store root)."""

    def __init__(self, uri: str) -> None:
        import fsspec

        self.uri = canonical_uri(uri)
        self.fs, self.root = fsspec.core.url_to_fs(self.uri)
        self.local = not is_url(self.uri)

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def isdir(self, rel: str) -> bool:
        return bool(self.fs.isdir(self.path(rel)))

    def exists(self, rel: str) -> bool:
        return bool(self.fs.exists(self.path(rel)))

    def dirs(self, rel: str) -> list[str]:
        if not self.isdir(rel):
            return []
        return sorted(e["name"].rstrip("/").rsplit("/", 1)[-1] for e in self.fs.ls(self.path(rel), detail=True)
                      if e.get("type") == "directory")

    def copy(self, src: str, dst: str) -> None:
        if self.local:
            shutil.copytree(self.path(src), self.path(dst))
        else:
            self.fs.copy(self.path(src), self.path(dst), recursive=True)

    def rename(self, src: str, dst: str) -> bool:
        """Move ``src`` to a ``dst`` that does not exist; False if ``dst`` appeared
        meanwhile (another process finished the same step)."""
        if self.local:
            try:
                os.rename(self.path(src), self.path(dst))
            except OSError:
                if not self.exists(f"{dst}/zarr.json"):
                    raise
                return False
            return True
        if self.exists(dst):
            return False
        self.fs.mv(self.path(src), self.path(dst), recursive=True)
        return True

    def remove(self, rel: str) -> None:
        """Remove a folder: renamed aside first (locally), so that no reader ever sees a
        half-deleted group under its real name."""
        if self.local:
            parent, _, leaf = rel.rpartition("/")
            trash = f"{parent}/.{leaf}.old-{temp_tag()}" if parent else f".{leaf}.old-{temp_tag()}"
            try:
                os.rename(self.path(rel), self.path(trash))
            except FileNotFoundError:
                return
            shutil.rmtree(self.path(trash), ignore_errors=True)
        elif self.exists(rel):
            self.fs.rm(self.path(rel), recursive=True)


def sweep(fs: StoreFs, folders: tuple[str, ...]) -> None:
    """Remove temporaries (upgrades, groups being published, removals) in ``folders`` of
    a local store whose process is gone (killed hard)."""
    if not fs.local:
        return
    for folder in folders:
        for d in fs.dirs(folder):
            m = _TEMP.match(d)
            if m and not process_alive(int(m.group(1))):
                shutil.rmtree(fs.path(f"{folder}/{d}" if folder else d), ignore_errors=True)


def publish_group(uri: str, path: str, attrs: dict[str, Any], fill: Callable[[Any], None],
                  *, kind: str = "partial") -> bool:
    """Create group ``path`` of store ``uri`` with ``attrs``, filled by ``fill(group)``,
    under a hidden sibling ``.<leaf>.<kind>-<tag>`` renamed into place when complete.
    False (and nothing left behind) when ``path`` appeared meanwhile: the caller chooses
    another name or accepts the other writer's result. Any error removes the temporary."""
    fs = StoreFs(uri)
    parent, _, leaf = path.rpartition("/")
    tmp = f"{parent}/.{leaf}.{kind}-{temp_tag()}" if parent else f".{leaf}.{kind}-{temp_tag()}"
    try:
        group = open_group(fs.uri, tmp, mode="w")
        group.attrs.update(attrs)
        fill(group)
        if not fs.rename(tmp, path):
            fs.remove(tmp)
            return False
    except BaseException:
        fs.remove(tmp)
        raise
    return True


class StoreDestination:
    """Where a new image store is written: a hidden temporary sibling while it is being
    written (:meth:`open_store`), moved into place by :meth:`publish` (replacing an old
    store only with ``overwrite``), removed by :meth:`discard` on any failure."""

    def __init__(self, dest: str | Path, overwrite: bool):
        self.overwrite = overwrite
        tag = temp_tag()  # the pid tells a stale sibling (_sweep)
        self.local: Path | None
        if is_url(dest):
            import fsspec

            self.url = str(dest).rstrip("/")
            self.fs, self.path = fsspec.core.url_to_fs(self.url)
            head, _, name = self.url.rpartition("/")
            if not name:
                raise ValueError(f"destination URL has no name: {dest!r}")
            self.tmp_url = f"{head}/.{name}.partial-{tag}"
            _, self.tmp_path = fsspec.core.url_to_fs(self.tmp_url)
            self.local = None
            self.uri = self.url
        else:
            self.local = Path(str(dest).removeprefix("file://")).expanduser().absolute()
            self.tmp_local = self.local.parent / f".{self.local.name}.partial-{tag}"
            self.uri = str(self.local)

    def exists(self) -> bool:
        if self.local is not None:
            return self.local.exists()
        return bool(self.fs.exists(self.path))

    def check(self) -> None:
        if self.exists() and not self.overwrite:
            raise FileExistsError(f"image store already exists: {self.uri} (overwrite=False)")
        if self.local is not None and not self.local.parent.is_dir():
            raise FileNotFoundError(f"destination folder does not exist: {self.local.parent}")

    def open_store(self) -> Any:
        if self.local is not None:
            from zarr.storage import LocalStore

            self.tmp_local.mkdir()
            return LocalStore(self.tmp_local, read_only=False)
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(self.tmp_url, read_only=False)

    def publish(self) -> None:
        """Move the finished temporary store into place."""
        if self.local is not None:
            if self.local.exists():
                if not self.overwrite:
                    raise FileExistsError(f"image store appeared meanwhile: {self.local}")
                trash = self.local.parent / f".{self.local.name}.old-{uuid.uuid4().hex[:10]}"
                os.rename(self.local, trash)
                os.rename(self.tmp_local, self.local)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.rename(self.tmp_local, self.local)
            self._sweep()
            return
        if self.fs.exists(self.path):
            if not self.overwrite:
                raise FileExistsError(f"image store appeared meanwhile: {self.url}")
            self.fs.rm(self.path, recursive=True)
        self.fs.mv(self.tmp_path, self.path, recursive=True)

    def _sweep(self) -> None:
        """Remove siblings left by imports of this destination that were killed hard."""
        assert self.local is not None
        for sibling in self.local.parent.glob(f".{self.local.name}.partial-*"):
            pid = sibling.name.rsplit(".partial-", 1)[1].split("-", 1)[0]
            if pid.isdigit() and not process_alive(int(pid)):
                shutil.rmtree(sibling, ignore_errors=True)

    def discard(self) -> None:
        if self.local is not None:
            shutil.rmtree(self.tmp_local, ignore_errors=True)
            return
        try:
            if self.fs.exists(self.tmp_path):
                self.fs.rm(self.tmp_path, recursive=True)
        except OSError:  # best effort: the partial store is marked by its name
            pass
