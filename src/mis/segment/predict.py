"""Chunked prediction over an OME-Zarr image: ``mis predict IMAGE --model M --run NAME``.

The image's level-0 array ``(c, y, x)`` is processed block by block (a block = one
chunk, or ``block x block`` chunks), each read with :func:`~mis.segment.filters.halo`
pixels of real neighbours (clipped at the image border, rounded up to the CNN stride),
so its features -- and hence its prediction -- **equal whole-image prediction exactly**
(tested pixel for pixel on an image several chunks wide). Results are written into the
image's own store, chunk-aligned with the source, as the OME-Zarr label image ``labels/prediction-<run>``
(layout and metadata: :mod:`mis.imagery.layout`; napari shows it over the image):

==============================================  =========================================
``labels/prediction-<run>/zarr.json``           ``attrs["ome"]``: multiscales +
                                                ``image-label`` (colours and, per value,
                                                concept URI, name, symbol, run, model
                                                hash); ``attrs["mis"]``: see below
``labels/prediction-<run>/0``, ``1``, ...       ``(1, y, x)`` uint8 (uint16 for > 254
                                                classes), chunks = the image's (512,
                                                512), one level per image level (2x2
                                                mode, built when the run completes):
                                                **class index + 1** (value ``v`` = class
                                                ``attrs["mis"]["classes"][v - 1]``);
                                                0 (the fill value) = not predicted yet
``labels/prediction-<run>/probability``         ``(y, x)`` float16, same chunks: the
                                                classifier's probability of the chosen
                                                class (max over classes); NaN = not yet
``labels/prediction-<run>/chunk_counts``        ``(ny, nx, K)`` int64, chunks (1, 1, K):
                                                per image chunk, its class pixel counts,
                                                written after the chunk's pixels; -1 (the
                                                fill value) = chunk not finished (the
                                                done-markers of resume)
==============================================  =========================================

``attrs["mis"]`` of the run group: ``run``, ``status`` (``running`` | ``complete``),
``classes`` (concept URIs, index = value - 1), ``nodata`` (the index
:func:`prediction_arrays` reports for "not predicted"), ``probability`` (the path of the
probability array), ``model_sha256``, ``model_path``, ``model_kind``, ``feature_config``
(JSON dict), ``feature_names``, ``halo``, ``image_shape`` (c, y, x), ``chunks`` (y, x),
``image_checksum_sha256``, ``started``, ``finished``, ``pixel_counts`` (per class, when
complete), ``software``. The run is listed in ``labels/zarr.json`` once complete.
:func:`prediction_arrays` is the reader the ingestion uses.

Execution: the blocks are dask tasks -- local threads by default (each task runs with one
torch thread on CPU, so ``workers`` blocks run side by side), or a ``dask.distributed``
cluster with ``scheduler="tcp://host:8786"`` (or a ``distributed.Client``; the model
file and the store must be reachable from the workers under the same paths/URLs). On a
GPU, compute is serialised by a lock while the other threads read and decode the next
chunks and write finished ones, so the GPU does not wait for I/O (prefetch).

Resume: each finished chunk writes its row of ``chunk_counts`` *after* its pixels; a run
that was interrupted (Ctrl-C, a killed job) continues where it stopped when run again
with the same name and model. Re-running a complete run does nothing; a run of that
name made with another model is refused unless ``overwrite`` is given.
"""

from __future__ import annotations

import datetime as _dt
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mis.imagery import layout
from mis.imagery.chunks import padded_window
from mis.imagery.imageref import ImageRef, image_ref
from mis.imagery.store import canonical_uri, open_group, remove_store
from mis.segment.classifiers import PixelClassifier, argmax_labels, library_version, load_classifier
from mis.segment.config import FeatureConfig
from mis.segment.filters import compute_features, feature_align, feature_names, halo

__all__ = [
    "Block",
    "PredictionError",
    "PredictionRun",
    "block_probabilities",
    "list_runs",
    "plan_blocks",
    "predict",
    "predict_in_memory",
    "prediction_arrays",
    "read_padded",
]

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class PredictionError(RuntimeError):
    """A prediction that cannot run or be read (the message says why)."""


# --------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class Block:
    """A task: the window ``[y0, y1) x [x0, x1)`` and the chunks ``(iy, ix)`` it covers."""

    index: tuple[int, int]
    y0: int
    y1: int
    x0: int
    x1: int
    chunks: tuple[tuple[int, int], ...]

    @property
    def pixels(self) -> int:
        return (self.y1 - self.y0) * (self.x1 - self.x0)


def plan_blocks(shape: Sequence[int], chunks: Sequence[int], block: int = 1) -> list[Block]:
    """Blocks of ``block x block`` chunks over an image of ``shape`` (.., y, x) with
    chunk shape ``chunks`` (.., cy, cx), row-major."""
    h, w = int(shape[-2]), int(shape[-1])
    cy, cx = int(chunks[-2]), int(chunks[-1])
    ny, nx = -(-h // cy), -(-w // cx)
    b = max(1, int(block))
    out = []
    for by in range(0, ny, b):
        for bx in range(0, nx, b):
            iys, ixs = range(by, min(ny, by + b)), range(bx, min(nx, bx + b))
            out.append(Block((by // b, bx // b), by * cy, min(h, (by + b) * cy), bx * cx, min(w, (bx + b) * cx),
                             tuple((iy, ix) for iy in iys for ix in ixs)))
    return out


def read_padded(
    image: Any, y0: int, y1: int, x0: int, x1: int, halo_px: int, align: int = 1
) -> tuple[np.ndarray, tuple[slice, slice]]:
    """Pixels (c, ., .) of the window ``[y0, y1) x [x0, x1)`` of a (c, y, x) array read
    with its :func:`~mis.imagery.chunks.padded_window`, and the slices of the window
    inside the result."""
    ry0, ry1, rx0, rx1 = padded_window(image.shape[1:], y0, y1, x0, x1, halo_px, align)
    region = np.asarray(image[:, ry0:ry1, rx0:rx1])
    return region, (slice(y0 - ry0, y1 - ry0), slice(x0 - rx0, x1 - rx0))


_DEVICE_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _device_lock(device: torch.device) -> threading.Lock | None:
    """One lock per accelerator: compute is serialised there while other threads do
    I/O (prefetch); None on CPU (blocks run truly in parallel)."""
    if device.type == "cpu":
        return None
    with _LOCKS_GUARD:
        return _DEVICE_LOCKS.setdefault(str(device), threading.Lock())


@torch.no_grad()
def block_probabilities(
    image: Any, clf: PixelClassifier, block: Block | tuple[int, int, int, int], config: FeatureConfig | None = None,
    *, region: tuple[np.ndarray, tuple[slice, slice]] | None = None, rows: int | None = 256,
) -> torch.Tensor:
    """Class probabilities (K, h, w) (on the classifier's device) of one window of a
    (c, y, x) array: features of the window + halo, interior kept, classified. On the
    CPU (filter features) the window is processed in strips of ``rows`` rows."""
    config = config or clf.feature_config
    if config is None:
        raise PredictionError("the model has no feature config")
    if isinstance(block, Block):
        y0, y1, x0, x1 = block.y0, block.y1, block.x0, block.x1
    else:
        y0, y1, x0, x1 = block
    if region is None:
        region = read_padded(image, y0, y1, x0, x1, halo(config), feature_align(config))
    pixels, (sy, sx) = region
    dev = clf.device or torch.device("cpu")
    lock = _device_lock(dev)
    if lock is not None:
        x = torch.from_numpy(np.ascontiguousarray(pixels))
        x = x.pin_memory().to(dev, non_blocking=True) if dev.type == "cuda" else x.to(dev)
        with lock:
            f, _ = compute_features(x, config, device=dev)
            return clf.predict_proba(f[:, sy, sx])
    if config.cnn is not None or rows is None or rows >= sy.stop - sy.start:
        f, _ = compute_features(pixels, config, device=dev)
        return clf.predict_proba(f[:, sy, sx])
    # CPU: strips of `rows` rows (+ halo, taken from the region in memory): the feature
    # stack of a strip is what is in memory at a time (the full ilastik bank of a whole
    # 512 x 512 block would be ~170 MB per thread), with the same numbers (the halo again)
    hal = halo(config)
    x = torch.from_numpy(np.ascontiguousarray(pixels))
    h = sy.stop - sy.start
    out = None
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        a, b = max(0, sy.start + r0 - hal), min(pixels.shape[1], sy.start + r1 + hal)
        f, _ = compute_features(x[:, a:b], config, device=dev)
        p = clf.predict_proba(f[:, sy.start + r0 - a : sy.start + r1 - a, sx])
        if out is None:
            out = torch.empty((p.shape[0], h, sx.stop - sx.start), dtype=p.dtype, device=p.device)
        out[:, r0:r1] = p
    assert out is not None
    return out


def _labels_and_probability(proba: torch.Tensor, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """(K, h, w) probabilities -> class index 0..K-1 (first on ties) and its probability."""
    lab = argmax_labels(proba) - 1
    best = proba.max(0).values
    return lab.to(torch.int32).cpu().numpy().astype(dtype), best.to(torch.float16).cpu().numpy()


# --------------------------------------------------------------------------- model cache

_MODELS: dict[tuple[str, str, str], PixelClassifier] = {}
_MODELS_GUARD = threading.Lock()


def _model(path: str, sha: str, device: str | None) -> PixelClassifier:
    """The classifier of a model file, loaded once per process (and device)."""
    key = (str(path), sha, str(device))
    with _MODELS_GUARD:
        clf = _MODELS.get(key)
        if clf is None:
            from mis.segment.device import pick_device

            clf = load_classifier(path, device=pick_device(device))
            _MODELS[key] = clf
        return clf


# --------------------------------------------------------------------------- the store


def _check_run_name(run: str) -> str:
    if not _RUN_NAME.match(run):
        raise PredictionError(f"run name {run!r}: use letters, digits, '.', '_' or '-', starting with a "
                              "letter or digit (at most 100 characters)")
    return run


# Opening a group or array of a run: missing (zarr's NodeNotFoundError is a ValueError and
# a FileNotFoundError; a missing member is a KeyError), unreadable, or torn metadata
# (a JSONDecodeError is a ValueError).
_OPEN_ERRORS = (KeyError, OSError, ValueError)
# Reading a chunk torn by a killed writer: the codecs raise RuntimeError (blosc) or
# ValueError (short or undecodable buffer); the store raises OSError.
_READ_ERRORS = (OSError, RuntimeError, ValueError)


def _read_done(store_uri: str, run: str) -> dict[tuple[int, int], list[int]]:
    """Finished chunks -> their class pixel counts, from ``chunk_counts`` (a chunk's
    row there is written after its pixels; unwritten = -1 = not finished)."""
    try:
        group = open_group(store_uri, layout.prediction_path(run), mode="r")
        arr = group["chunk_counts"]
    except _OPEN_ERRORS:
        return {}
    ny, nx, _ = arr.shape
    try:
        counts = np.asarray(arr[:])
    except _READ_ERRORS:  # a torn marker (killed mid-write): read marker by marker
        counts = np.full(arr.shape, -1, np.int64)
        for iy in range(ny):
            for ix in range(nx):
                try:
                    counts[iy, ix] = arr[iy, ix]
                except _READ_ERRORS:
                    pass
    done_y, done_x = np.nonzero(counts[:, :, 0] >= 0)
    return {(int(iy), int(ix)): counts[iy, ix].tolist() for iy, ix in zip(done_y, done_x, strict=True)}


def _remove_run(uri: str, run: str) -> None:
    remove_store(f"{canonical_uri(uri)}/{layout.prediction_path(run)}")


def list_runs(store_uri: str) -> dict[str, dict[str, Any]]:
    """{run name: its ``attrs["mis"]``} of every prediction run in an image store."""
    out = {}
    for child in layout.label_image_names(store_uri):
        if (run := layout.parse_prediction(child)) is None:
            continue
        try:
            out[run] = dict(open_group(store_uri, layout.prediction_path(run), mode="r").attrs).get("mis", {})
        except _OPEN_ERRORS:
            continue
    return out


def prediction_arrays(store_uri: str, run: str, *, allow_incomplete: bool = False) -> tuple[Any, Any, dict[str, Any]]:
    """The stored prediction of a run: ``(classes, probability, attrs)`` -- two read-only
    arrays of shape (y, x) (classes: class index 0..K-1 into ``attrs["classes"]``,
    ``attrs["nodata"]`` where not predicted, read from the label image's level 0 by
    :class:`~mis.imagery.layout.ClassIndexArray`; probability: float16 max class
    probability) and the run's ``attrs["mis"]`` dict. Refuses a run that is not complete
    unless ``allow_incomplete``."""
    runs = list_runs(store_uri)  # upgrades a store of the old layout first
    if run not in runs:
        known = ", ".join(runs) or "none"
        raise PredictionError(f"{store_uri}: no prediction run {run!r} (runs: {known})")
    group = open_group(store_uri, layout.prediction_path(run), mode="r")
    attrs = runs[run]
    if attrs.get("status") != "complete" and not allow_incomplete:
        done = len(_read_done(store_uri, run))
        raise PredictionError(f"{store_uri}: prediction run {run!r} is not complete ({done} chunks done); "
                              "run `mis predict` again with the same --run to finish it")
    dtype, nodata = _class_dtype(len(attrs.get("classes") or []))
    classes = layout.ClassIndexArray(group["0"], int(attrs.get("nodata", nodata)), dtype)
    return classes, group["probability"], attrs


def _software() -> dict[str, str]:
    from mis import __version__

    return {"mis": __version__, "torch": torch.__version__, "sklearn": library_version("scikit-learn")}


def _class_dtype(k: int) -> tuple[np.dtype, int]:
    if k <= 254:
        return np.dtype(np.uint8), 255
    if k <= 65534:
        return np.dtype(np.uint16), 65535
    raise PredictionError(f"{k} classes: at most 65534 are supported")


def _label_classes(ref: ImageRef, uris: Sequence[str], url: str | None) -> list[layout.LabelClass]:
    """What each class of the run looks like in a viewer (name, symbol, colour): from the
    vocabulary for a catalogue image, else as the store's label sets describe it, else
    the URI's last segment and a fallback colour."""
    known = layout.classes_in_store(ref.store_uri)
    if ref.image_id is not None:
        from mis.catalogue import models as m
        from mis.catalogue.session import transaction
        from mis.segment.labels import concept_colour

        with transaction(url) as session:
            for u in uris:
                if (c := session.get(m.Concept, u)) is not None:
                    known[u] = layout.LabelClass(0, u, c.pref_label, concept_colour(c), c.notation or None)
    return layout.describe_classes(uris, known)


def _prepare_run(ref: ImageRef, run: str, meta: dict[str, Any], overwrite: bool,
                 classes: Sequence[layout.LabelClass]) -> dict[str, Any]:
    """Create the run's label image and arrays, or check that an existing run matches."""
    from mis.imagery.omezarr import _compressor, read_metadata

    existing = list_runs(ref.store_uri).get(run)
    if existing is not None:
        same = (existing.get("model_sha256") == meta["model_sha256"]
                and list(existing.get("image_shape", [])) == list(meta["image_shape"])
                and existing.get("classes") == meta["classes"])
        if same:
            return existing
        if not overwrite:
            raise PredictionError(
                f"{ref.store_uri}: prediction run {run!r} exists, made with another model "
                f"(sha256 {str(existing.get('model_sha256'))[:12]}..., status {existing.get('status')}); "
                "choose another --run name or pass --overwrite to replace it")
        _remove_run(ref.store_uri, run)
        layout.update_labels_index(ref.store_uri)
    elif overwrite:
        _remove_run(ref.store_uri, run)  # leftovers without a readable group
    path = layout.prediction_path(run)
    ome = layout.label_image_ome(read_metadata(ref.store_uri)["ome"], path.rsplit("/", 1)[-1], classes,
                                 {"run": run, "model_sha256": meta["model_sha256"]})
    root = open_group(ref.store_uri, mode="r+")
    root.require_group(layout.LABELS)
    group = root.create_group(path, attributes={"ome": ome, "mis": meta})
    _, h, w = ref.shape
    _, cy, cx = ref.chunks
    dtype, _ = _class_dtype(len(meta["classes"]))
    common = {"classes": meta["classes"], "run": run}
    level0 = layout.create_label_levels(group, ref.store_uri, dtype)[0]
    level0.attrs.update({**common, "description": "class index + 1 into attrs['classes']; 0 = not predicted"})
    group.create_array("probability", shape=(h, w), chunks=(cy, cx), dtype=np.float16,
                       fill_value=float("nan"), compressors=[_compressor(np.dtype(np.float16))],
                       dimension_names=("y", "x"),
                       attributes={**common, "description": "probability of the predicted class (max over classes)"})
    k = len(meta["classes"])
    group.create_array("chunk_counts", shape=(-(-h // cy), -(-w // cx), k), chunks=(1, 1, k), dtype=np.int64,
                       fill_value=-1, dimension_names=("chunk_y", "chunk_x", "class"),
                       attributes={**common, "description": "class pixel counts per finished image chunk; "
                                                           "-1 = chunk not finished"})
    return meta


def _finish_run(ref: ImageRef, run: str, n_classes: int) -> dict[str, Any]:
    """Zoomed-out levels, totals, status complete, and the run listed as a label image."""
    done = _read_done(ref.store_uri, run)
    totals = np.zeros(n_classes, np.int64)
    for counts in done.values():
        totals[: len(counts)] += np.asarray(counts[:n_classes], np.int64)
    group = open_group(ref.store_uri, layout.prediction_path(run), mode="r+")
    layout.build_pyramid(group)
    meta = dict(group.attrs)["mis"]
    meta.update(status="complete", finished=_now(), pixel_counts=totals.tolist())
    group.attrs.update({"mis": meta})
    layout.update_labels_index(ref.store_uri)
    return meta


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- tasks


_ARRAYS: dict[tuple[str, str], tuple[Any, Any, Any, Any]] = {}
_ARRAYS_GUARD = threading.Lock()


def _arrays(store_uri: str, run: str) -> tuple[Any, Any, Any, Any]:
    """(image level 0, classes, probability, chunk_counts) arrays, opened once per process."""
    key = (store_uri, run)
    with _ARRAYS_GUARD:
        if key not in _ARRAYS:
            from mis.imagery.omezarr import open_level

            group = open_group(store_uri, layout.prediction_path(run), mode="r+")
            _ARRAYS[key] = (open_level(store_uri, 0), group["0"], group["probability"], group["chunk_counts"])
        return _ARRAYS[key]


def _predict_block_task(spec: dict[str, Any]) -> dict[str, Any]:
    """One block: read + features + classify + write + done-markers. Runs in a local
    thread or on a dask.distributed worker (everything it needs is in ``spec``)."""
    t0 = time.perf_counter()
    clf = _model(spec["model_path"], spec["model_sha256"], spec["device"])
    image, classes_arr, prob_arr, counts_arr = _arrays(spec["store_uri"], spec["run"])
    b: Block = spec["block"]
    proba = block_probabilities(image, clf, b)
    lab, best = _labels_and_probability(proba, np.dtype(spec["dtype"]))
    classes_arr[0, b.y0 : b.y1, b.x0 : b.x1] = lab + 1  # label value = class index + 1; 0 = not predicted
    prob_arr[b.y0 : b.y1, b.x0 : b.x1] = best
    cy, cx = spec["chunks"]
    k = spec["n_classes"]
    for iy, ix in b.chunks:
        sub = lab[iy * cy - b.y0 : (iy + 1) * cy - b.y0, ix * cx - b.x0 : (ix + 1) * cx - b.x0]
        counts_arr[iy, ix, :] = np.bincount(sub.ravel(), minlength=k)[:k]  # the done-marker, last
    return {"index": b.index, "chunks": len(b.chunks), "pixels": b.pixels, "seconds": time.perf_counter() - t0}


class _ThreadsLimit:
    """Torch intra-op threads = 1 while several blocks run in parallel on the CPU."""

    def __init__(self, n: int | None) -> None:
        self.n: int | None = n
        self.old: int | None = None

    def __enter__(self) -> None:
        if self.n is not None:
            self.old = torch.get_num_threads()
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: Any) -> None:
        if self.old is not None:
            torch.set_num_threads(self.old)


def _progress(enabled: bool, total: int, done: int, label: str) -> Any:
    if not enabled:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    prog = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("chunks"), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                    TimeRemainingColumn(), transient=False)
    prog.start()
    prog.add_task(label, total=total, completed=done, rate="")
    return prog


def _run_local(
    fn: Callable[[Any], Any], items: list[Any], workers: int, on_result: Callable[[Any], None]
) -> None:
    """Run ``fn(item)`` for every item as dask tasks on the local threaded scheduler,
    ``workers`` at a time; ``on_result`` is called in this thread for each result."""
    import functools

    import dask.threaded
    from dask.callbacks import Callback

    keys = [f"mis-block-{i}-{uuid.uuid4().hex[:6]}" for i in range(len(items))]
    # the item is bound in a partial so that dask does not walk into it
    dsk = {k: (functools.partial(fn, it),) for k, it in zip(keys, items, strict=True)}

    def post(key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        on_result(result)

    with Callback(posttask=post):
        dask.threaded.get(dsk, keys, num_workers=max(1, workers))


def _run_distributed(
    fn: Callable[[Any], Any], items: list[Any], scheduler: Any, on_result: Callable[[Any], None]
) -> None:
    """The same on a dask.distributed cluster (an address or a ``Client``)."""
    try:
        from distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover - an optional dependency
        raise PredictionError("--scheduler needs dask.distributed: pip install distributed") from exc
    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    futures = []
    try:
        futures = [client.submit(fn, it, pure=False) for it in items]
        for fut in as_completed(futures):
            on_result(fut.result())
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        if own:
            client.close()


# --------------------------------------------------------------------------- predict


@dataclass
class PredictionRun:
    """What :func:`predict` did."""

    store_uri: str
    run: str
    classes: list[str]
    chunks_total: int
    chunks_skipped: int  # already done by an earlier, interrupted run
    chunks_computed: int
    seconds: float
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def classes_path(self) -> str:
        """The label image of the run (level 0 is ``<path>/0``)."""
        return layout.prediction_path(self.run)

    @property
    def probability_path(self) -> str:
        return f"{layout.prediction_path(self.run)}/probability"


def _check_bands(clf: PixelClassifier, config: FeatureConfig, n_bands: int, where: str) -> None:
    if clf.n_features is None:
        raise PredictionError("the model is not fitted")
    want = len(feature_names(config, n_bands))
    if want != clf.n_features:
        trained = [n for n in (clf.feature_names or []) if n.startswith("raw_b") or "_b" in n]
        bands = len({n.rsplit("_b", 1)[-1] for n in trained}) if trained else "?"
        raise PredictionError(f"{where}: the model expects {clf.n_features} features (trained on {bands} bands); "
                              f"this image has {n_bands} bands, giving {want}")


def _default_workers(device: torch.device) -> int:
    return 4 if device.type != "cpu" else max(1, torch.get_num_threads())


def predict(
    image: int | str | Path | ImageRef,
    model: str | Path,
    run: str | None = None,
    *,
    scheduler: Any = None,
    workers: int | None = None,
    device: str | None = None,
    block: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    url: str | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> PredictionRun:
    """Predict an image (catalogue id or store path) with a model file, chunk by chunk,
    into the label image ``labels/prediction-<run>`` of its store (see the module docs).

    ``run`` defaults to the model file's stem. ``workers``: parallel blocks on the local
    threaded scheduler (default: torch's CPU thread count; 4 with a GPU, one computing
    while the others read/write). ``block``: chunks per block side (default 1 on CPU,
    4 on a GPU). ``scheduler``: a dask.distributed address or Client. ``on_result`` is
    called after each block (tests use it to interrupt a run)."""
    from mis.imagery.omezarr import sha256_file
    from mis.segment.device import pick_device

    t0 = time.perf_counter()
    ref = image_ref(image, url)
    model = Path(model)
    if not model.is_file():
        raise PredictionError(f"{model}: no such model file")
    dev = pick_device(device)
    sha = sha256_file(model)
    clf = _model(str(model.absolute()), sha, str(dev))
    config = clf.feature_config
    if config is None:
        raise PredictionError(f"{model}: the model file has no feature config")
    _check_bands(clf, config, ref.shape[0], f"{model} on {ref.store_uri}")
    run = _check_run_name(run or model.stem)
    dtype, nodata = _class_dtype(clf.n_classes)
    meta = {
        "run": run, "status": "running", "classes": list(clf.classes), "nodata": nodata,
        "model_sha256": sha, "model_path": str(model.absolute()), "model_kind": clf.kind,
        "feature_config": config.to_dict(), "feature_names": clf.feature_names, "halo": halo(config),
        "image_shape": list(ref.shape), "chunks": list(ref.chunks[1:]), "image_id": ref.image_id,
        "image_checksum_sha256": ref.checksum_sha256, "started": _now(), "software": _software(),
        "probability": "probability",
        "layout": {"0": "label value = class index + 1 into classes; 0 = not predicted",
                   "probability": "float16 max class probability; NaN = not predicted"},
    }
    current = _prepare_run(ref, run, meta, overwrite, _label_classes(ref, list(clf.classes), url))
    block = block or (4 if dev.type != "cpu" else 1)
    blocks = plan_blocks(ref.shape, ref.chunks, block)
    done = _read_done(ref.store_uri, run)
    todo = [b for b in blocks if not all(c in done for c in b.chunks)]
    total = sum(len(b.chunks) for b in blocks)
    skipped = total - sum(len(b.chunks) for b in todo)
    specs = [{"store_uri": ref.store_uri, "run": run, "model_path": str(model.absolute()), "model_sha256": sha,
              "device": str(dev) if scheduler is None else device, "block": b, "dtype": dtype.str,
              "chunks": tuple(ref.chunks[1:]), "n_classes": clf.n_classes} for b in todo]
    bar = _progress(progress and bool(todo), total, skipped, f"predict {run}")
    state: dict[str, Any] = {"pixels": 0, "t": time.perf_counter(), "computed": 0}

    def got(res: dict[str, Any]) -> None:
        state["pixels"] += res["pixels"]
        state["computed"] += res["chunks"]
        if bar is not None:
            rate = state["pixels"] / 1e6 / max(1e-9, time.perf_counter() - state["t"])
            bar.update(bar.task_ids[0], advance=res["chunks"], rate=f"{rate:.2f} MPix/s")
        if on_result is not None:
            on_result(res)

    try:
        if todo:
            if scheduler is not None:
                _run_distributed(_predict_block_task, specs, scheduler, got)
            else:
                n = workers or _default_workers(dev)
                with _ThreadsLimit(1 if (dev.type == "cpu" and n > 1) else None):
                    _run_local(_predict_block_task, specs, n, got)
    finally:
        if bar is not None:
            bar.stop()
        _ARRAYS.pop((ref.store_uri, run), None)
    done_before = not todo and current.get("status") == "complete"
    attrs = current if done_before else _finish_run(ref, run, clf.n_classes)
    return PredictionRun(ref.store_uri, run, list(clf.classes), total, skipped, state["computed"],
                         time.perf_counter() - t0, attrs)


def predict_in_memory(
    image: int | str | Path | ImageRef,
    clf: PixelClassifier,
    *,
    reduce: Callable[[Block, torch.Tensor], Any] | None = None,
    workers: int | None = None,
    block: int = 1,
    progress: bool = False,
    url: str | None = None,
) -> Any:
    """Predict a stored image without writing anything. Default: returns (classes (H, W)
    int64 0..K-1, probability (H, W) float32 max probability). With ``reduce(block,
    proba)`` returns ``{block.index: reduce(...)}`` instead (e.g. pooled uncertainty)."""
    from mis.imagery.omezarr import open_level

    ref = image_ref(image, url)
    config = clf.feature_config
    if config is None:
        raise PredictionError("the model has no feature config")
    _check_bands(clf, config, ref.shape[0], ref.store_uri)
    arr = open_level(ref.store_uri, 0)
    blocks = plan_blocks(ref.shape, ref.chunks, block)
    _, h, w = ref.shape
    out_lab = out_prob = None
    results: dict[tuple[int, int], Any] = {}
    if reduce is None:
        out_lab = np.empty((h, w), np.int64)
        out_prob = np.empty((h, w), np.float32)

    def task(b: Block) -> tuple[Block, Any]:
        proba = block_probabilities(arr, clf, b, config)
        if reduce is not None:
            return b, reduce(b, proba)
        lab = (argmax_labels(proba) - 1).cpu().numpy()
        assert out_lab is not None and out_prob is not None  # no reduce: whole-image outputs
        out_lab[b.y0 : b.y1, b.x0 : b.x1] = lab
        out_prob[b.y0 : b.y1, b.x0 : b.x1] = proba.max(0).values.float().cpu().numpy()
        return b, None

    dev = clf.device or torch.device("cpu")
    n = workers or _default_workers(dev)
    bar = _progress(progress, sum(len(b.chunks) for b in blocks), 0, "predict")

    def got(res: tuple[Block, Any]) -> None:
        b, value = res
        results[b.index] = value
        if bar is not None:
            bar.update(bar.task_ids[0], advance=len(b.chunks))

    try:
        with _ThreadsLimit(1 if (dev.type == "cpu" and n > 1) else None):
            _run_local(task, blocks, n, got)
    finally:
        if bar is not None:
            bar.stop()
    if reduce is not None:
        return results
    return out_lab, out_prob
