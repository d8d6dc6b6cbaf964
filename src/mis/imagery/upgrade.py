"""Upgrade an image store of the first layout in place: ``mis image upgrade STORE``, or
automatically the first time MIS opens its labels or predictions.

The first layout nested label versions (``labels/<set>/v<N>``, one level) and kept
predictions in a private ``predictions/<run>/{classes, probability, chunk_counts}`` group
(``classes`` = class index, 255/65535 = not predicted). No OME-Zarr reader found either.
The upgrade writes each of them as the label image of :mod:`mis.imagery.layout`
(``labels/<set>-v<N>``, ``labels/prediction-<run>``, a pyramid level per image level,
prediction values ``index + 1``), then removes the old groups and rewrites the
``labels`` list.

Safety: every new label image is built under a hidden temporary name
(``labels/.<name>.upgrade-<pid>-<id>``) and renamed into place only when complete; the
old group is removed only after its replacement is in place. Interrupted at any moment
(Ctrl-C, a killed process), the store holds the old group, or the new one, or both (the
old then removed by the next run), never half of one; temporaries of dead processes are
swept. Running it again on an upgraded store changes nothing (idempotent). On object
storage (fsspec URLs) the rename is a copy and is not atomic.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mis.imagery import layout as L
from mis.imagery.store import StoreFs, open_group, publish_group, sweep

__all__ = ["StoreUpgrade", "StoreUpgradeError", "ensure_current", "needs_upgrade", "upgrade_store"]

_OLD_VERSION = re.compile(r"^v([1-9][0-9]*)$")
_OLD_PREDICTIONS = "predictions"


@dataclass
class StoreUpgrade:
    """What :func:`upgrade_store` did: the label images it wrote (paths in the store)."""

    store_uri: str
    label_sets: list[str] = field(default_factory=list)
    predictions: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.label_sets or self.predictions)


def _old_versions(fs: StoreFs, name: str) -> list[int]:
    return sorted(int(m.group(1)) for d in fs.dirs(f"{L.LABELS}/{name}")
                  if (m := _OLD_VERSION.match(d)) and fs.exists(f"{L.LABELS}/{name}/{d}/zarr.json"))


def _old_label_sets(fs: StoreFs) -> dict[str, list[int]]:
    out = {}
    for d in fs.dirs(L.LABELS):
        if d.startswith("."):
            continue
        versions = _old_versions(fs, d)
        if versions:
            out[d] = versions
    return out


def _old_runs(fs: StoreFs) -> list[str]:
    return [d for d in fs.dirs(_OLD_PREDICTIONS)
            if not d.startswith(".") and fs.exists(f"{_OLD_PREDICTIONS}/{d}/zarr.json")]


def needs_upgrade(uri: str) -> bool:
    """True when the store still holds groups of the first layout (or their remains)."""
    fs = StoreFs(uri)
    return fs.isdir(_OLD_PREDICTIONS) or bool(_old_label_sets(fs))


def ensure_current(uri: str) -> None:
    """Upgrade the store first if it has the first layout (a few directory listings
    otherwise): every reader of labels and predictions calls this."""
    if not needs_upgrade(uri):
        return
    try:
        upgrade_store(uri)
    except PermissionError as exc:
        raise PermissionError(f"{uri}: this store has the first layout of labels and predictions and must be "
                              f"upgraded (`mis image upgrade`), but it is not writable here ({exc})") from None


def _copy_level0(src: Any, dst: Any, convert: Any = None) -> None:
    """Level 0 of a label image from an old (1, y, x) or (y, x) array, chunk by chunk."""
    h, w = dst.shape[1:]
    cy, cx = dst.chunks[1:]
    for y0 in range(0, h, cy):
        for x0 in range(0, w, cx):
            y1, x1 = min(h, y0 + cy), min(w, x0 + cx)
            block = np.asarray(src[0, y0:y1, x0:x1] if src.ndim == 3 else src[y0:y1, x0:x1])
            if convert is not None:
                block = convert(block)
            if block.any():
                dst[0, y0:y1, x0:x1] = block.astype(dst.dtype)


def _build(fs: StoreFs, final: str, attrs: dict[str, Any], dtype: np.dtype, fill: Any) -> bool:
    """Build the label image ``final`` under a temporary name and rename it into place;
    ``fill(group)`` writes level 0 (and any extra array). False if it was there already."""
    if fs.exists(f"{final}/zarr.json"):
        return False

    def build(group: Any) -> None:
        L.create_label_levels(group, fs.uri, dtype)
        fill(group)
        if attrs.get("mis", {}).get("status", "complete") == "complete":
            L.build_pyramid(group)

    return publish_group(fs.uri, final, attrs, build, kind="upgrade")


def _upgrade_label_version(fs: StoreFs, image_ome: dict[str, Any], name: str, version: int) -> str | None:
    old = open_group(fs.uri, f"{L.LABELS}/{name}/v{version}")
    attrs = dict(old.attrs)
    label = attrs.get("ome", {}).get("image-label", {})
    # the first layout allowed set names that now mean prediction runs: such a set is renamed
    new_name = f"labelset-{name}" if name == "prediction" or L.parse_prediction(name) is not None else name
    final = L.label_set_path(new_name, version)
    mis = {**attrs.get("mis", {}), "name": new_name, "version": version}
    if new_name != name:
        mis["renamed_from"] = name
    new = {"ome": L.label_image_ome(image_ome, final.rsplit("/", 1)[-1], L.label_classes_of(label)), "mis": mis}
    done = _build(fs, final, new, np.dtype(old["0"].dtype), lambda g: _copy_level0(old["0"], g["0"]))
    return final if done else None


def _upgrade_run(fs: StoreFs, image_ome: dict[str, Any], run: str, known: dict[str, L.LabelClass]) -> str | None:
    old_path = f"{_OLD_PREDICTIONS}/{run}"
    old = open_group(fs.uri, old_path)
    meta = dict(old.attrs).get("mis", {})
    uris = [str(u) for u in meta.get("classes") or []]
    nodata = int(meta.get("nodata", 255))
    final = L.prediction_path(run)
    classes = L.describe_classes(uris, known)
    new = {"ome": L.label_image_ome(image_ome, final.rsplit("/", 1)[-1], classes,
                                    {"run": run, "model_sha256": meta.get("model_sha256")}),
           "mis": {**meta, "probability": "probability", "upgraded_from": old_path}}

    def convert(block: np.ndarray) -> np.ndarray:
        out = block.astype(np.int64) + 1
        out[block == nodata] = 0
        return out

    def fill(group: Any) -> None:
        group["0"].attrs.update({"classes": uris, "run": run})
        _copy_level0(old["classes"], group["0"], convert)
        for extra in ("probability", "chunk_counts"):
            if fs.exists(f"{old_path}/{extra}/zarr.json"):
                fs.copy(f"{old_path}/{extra}", f"{group.path}/{extra}")

    done = _build(fs, final, new, np.dtype(old["classes"].dtype), fill)
    return final if done else None


class StoreUpgradeError(ValueError):
    """A group of the first layout that cannot be upgraded (the message names it and why)."""


@contextmanager
def _naming(fs: StoreFs, old: str) -> Iterator[None]:
    """Errors while upgrading ``old`` name the store and the group (the store is unchanged)."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StoreUpgradeError(f"{fs.uri}: cannot upgrade {old} ({type(exc).__name__}: {exc}); "
                                "the store keeps it as it was") from exc


def upgrade_store(uri: str) -> StoreUpgrade:
    """Upgrade one image store in place (see the module docs); returns what was written."""
    from mis.imagery.omezarr import read_metadata

    fs = StoreFs(uri)
    report = StoreUpgrade(fs.uri)
    image_ome = read_metadata(fs.uri)["ome"]
    sweep(fs, ("", L.LABELS))
    for name, versions in _old_label_sets(fs).items():
        for v in versions:
            with _naming(fs, f"{L.LABELS}/{name}/v{v}"):
                if (done := _upgrade_label_version(fs, image_ome, name, v)) is not None:
                    report.label_sets.append(done)
        fs.remove(f"{L.LABELS}/{name}")
    known = L.classes_in_store(fs.uri)
    for run in _old_runs(fs):
        with _naming(fs, f"{_OLD_PREDICTIONS}/{run}"):
            if (done := _upgrade_run(fs, image_ome, run, known)) is not None:
                report.predictions.append(done)
        fs.remove(f"{_OLD_PREDICTIONS}/{run}")
    if fs.isdir(_OLD_PREDICTIONS) and not _old_runs(fs):
        fs.remove(_OLD_PREDICTIONS)
    L.update_labels_index(fs.uri)
    return report
