"""Ingest one segmentation run: class map -> grains, roxels, rock -> PostGIS, chunk by chunk.

Input (the segmentation stage's output): a class-label array ``(y, x)`` (values = index
into the run's ordered class list) and optionally a probability array ``(y, x)`` (the
classifier's max class probability), both chunk-aligned with the image, as zarr arrays,
their paths, or numpy arrays (tests).

Flow, chunk by chunk in raster order (memory: a few chunks in flight plus the grains still
open on the frontier of processed chunks, whatever the image size):

1. per chunk, in parallel (local threads, or a ``dask.distributed`` scheduler at an
   address; ``2 x workers`` chunks in flight): read labels (with the halo the cleaning
   needs) and probabilities, clean the class map (:mod:`mis.grains.cleaning`: small
   components absorbed, boundary cuts, minimum grain size; equal to cleaning the whole
   image), label grains (4-connected, same class, without the cut pixels) and particles
   (sample pixels), per-grain moment sums
   and outline pieces, roxel class counts and dominant-grain candidates, class-boundary
   edges;
2. merge grains and particles across chunk edges (:class:`~mis.grains.labelling.ComponentStream`);
   grains that cannot grow any more get their metrics (:func:`~mis.grains.metrics.grain_metrics`),
   ids reserved from the database, and are streamed by COPY;
3. roxels whose candidate grains are all complete are streamed too; the others (a grain
   still open on the frontier) wait in a temporary file and are written at the end,
   when every grain is known;
4. the rock statistics accumulate; at the end the rock row is written and the run is
   committed: one transaction (see :mod:`mis.ingest.writer`).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mis.grains.cleaning import BadValue, GrainRules, describe_rules, read_cleaned, window_reader
from mis.grains.labelling import (
    ComponentStream,
    Ragged,
    TileComponents,
    ignore_lut,
    label_tile,
    tile_components,
)
from mis.grains.metrics import GRAIN_REDUCERS, GrainTable, grain_metrics, grain_tile
from mis.grains.rock import (
    ClassInfo,
    LiberationClasses,
    RockAccumulator,
    RockResult,
    edge_counts,
    load_classes,
    tile_edges,
)
from mis.grains.roxels import (
    DEFAULT_ROXEL_SIZE,
    DepthRegistration,
    HolePositioner,
    TileRoxels,
    check_roxel_size,
    composition,
    load_positioner,
    pick_dominant,
    roxel_dtype,
    tile_roxels,
)
from mis.imagery.chunks import tile_rows
from mis.ingest.writer import Provenance, RunWriter
from mis.vocab.names import local_name

__all__ = [
    "IngestError",
    "IngestSummary",
    "ImageInfo",
    "ingest",
    "open_array",
    "stored_prediction",
    "resolve_classes",
]

#: Mineral classes whose liberation is reported when none are chosen.
DEFAULT_LIBERATION_CLASSES = ("sulfide", "native element")


class IngestError(RuntimeError):
    """Bad input for an ingestion (message names what and why); nothing was written."""


# --------------------------------------------------------------------------- inputs
def open_array(spec: Any) -> Any:
    """A 2-D array from a numpy/zarr array, or a path to a zarr array (``dir`` or
    ``store.zarr::path/in/store``; a group holding a ``0`` array, as OME-NGFF labels do,
    opens its ``0``)."""
    if spec is None or hasattr(spec, "shape"):
        return spec
    import zarr

    text = str(spec)
    store, _, inner = text.partition("::")
    try:
        node = zarr.open(store, mode="r", path=inner or None)
    except Exception as exc:  # zarr raises several kinds; re-raised naming the input
        raise IngestError(f"{text}: cannot open as a zarr array ({exc})") from exc
    if not hasattr(node, "shape"):
        if "0" in node:
            node = node["0"]
        else:
            raise IngestError(f"{text}: is a zarr group, not an array (and has no '0' array)")
    return node


def stored_prediction(store_uri: str, name: str) -> tuple[Any, Any, list[str], dict[str, Any]]:
    """The complete prediction run ``name`` that ``mis predict`` left in the image store
    (the label image ``labels/prediction-<name>``, see :mod:`mis.segment.predict`):
    ``(classes array, probability array, class URIs, run attrs)``."""
    from mis.segment.predict import PredictionError, prediction_arrays

    try:
        labels, probability, attrs = prediction_arrays(store_uri, name)
    except PredictionError as exc:
        raise IngestError(f"{exc}; run `mis predict` (or `mis ingest --model`) first, or give --labels") from None
    return labels, probability, list(attrs.get("classes") or []), attrs


def resolve_classes(session: Any, terms: Sequence[str]) -> list[str]:
    """Class terms as people type them ("Ccp", "quartz", "background", a URI) -> concept
    URIs, through the same resolution as the labels (:func:`mis.segment.labels.resolve_classes`)."""
    from mis.segment.labels import LabelError
    from mis.segment.labels import resolve_classes as resolve_label_classes

    try:
        resolved = resolve_label_classes(terms, session=session)
    except LabelError as exc:
        raise IngestError(str(exc)) from None
    return [resolved[t].uri for t in terms]


@dataclass(frozen=True)
class ImageInfo:
    image_id: int
    plug_id: int
    drillcore_id: int
    shape: tuple[int, int, int]
    chunks: tuple[int, int, int]
    pixel_size_um: float
    store_uri: str
    checksum: str
    depth: DepthRegistration


def _image_info(session: Any, image_id: int) -> ImageInfo:
    from mis.catalogue import models as m

    image = session.get(m.Image, image_id)
    if image is None:
        raise IngestError(f"image {image_id}: no such image")
    plug = session.get(m.Plug, image.plug_id)
    shape = tuple(int(v) for v in image.shape)
    depth = DepthRegistration(height=shape[1], width=shape[2], axis=image.depth_axis,
                              top_m=image.depth_top_m, bottom_m=image.depth_bottom_m,
                              plug_from_m=plug.from_m, plug_to_m=plug.to_m)
    return ImageInfo(image.id, plug.id, plug.drillcore_id, shape,  # type: ignore[arg-type]
                     tuple(int(v) for v in image.chunks), float(image.pixel_size_um),  # type: ignore[arg-type]
                     image.store_uri, image.checksum_sha256, depth)


# --------------------------------------------------------------------------- per tile
@dataclass
class TileResult:
    grains: TileComponents
    particles: TileComponents | None
    roxels: TileRoxels
    edges: NDArray[np.int64]
    top: np.ndarray
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray
    seconds: float


def _process_tile(labels: Any, probability: Any, box: tuple[int, int, int, int, int, int],
                  image_shape: tuple[int, int], grain_lut: NDArray[np.int32],
                  particle_lut: NDArray[np.int32] | None, k: int, r: int, rules: GrainRules,
                  pixel_size_um: float, tile: tuple[int, int]) -> TileResult:
    """One chunk: its class map cleaned (read with the cleaning's halo), grains labelled
    without the cut pixels, particles, roxels and class-boundary edges of the cleaned map."""
    t0 = time.perf_counter()
    iy, ix, y0, x0, h, w = box
    prob = None
    if probability is not None:
        prob = np.asarray(probability[y0 : y0 + h, x0 : x0 + w], dtype=np.float32)
    try:
        values, cut = read_cleaned(window_reader(labels), (y0, x0, h, w), image_shape, grain_lut > 0, rules,
                                   pixel_size_um, None if probability is None else window_reader(probability))
        local = label_tile(values, grain_lut, exclude=cut)
    except BadValue as exc:
        if exc.pixel is not None:  # maybe in a neighbouring chunk, read for the halo
            iy, ix = exc.pixel[0] // tile[0], exc.pixel[1] // tile[1]
            y0, x0 = iy * tile[0], ix * tile[1]
            h, w = min(tile[0], image_shape[0] - y0), min(tile[1], image_shape[1] - x0)
        raise IngestError(f"label array, chunk ({iy}, {ix}) (pixels {y0}..{y0 + h - 1} x {x0}..{x0 + w - 1}): "
                          f"{exc}") from None
    except ValueError as exc:
        raise IngestError(f"label array, chunk ({iy}, {ix}): {exc}") from None
    grains = grain_tile(local, iy, ix, y0, x0, image_shape, prob)
    particles = None
    if particle_lut is not None:
        plocal = label_tile(values, particle_lut)
        particles = tile_components(plocal, iy, ix, y0, x0, image_shape[1])
        flat = plocal.labels.ravel().astype(np.int64)
        hist = np.bincount(flat * k + values.ravel().astype(np.int64), minlength=(plocal.n + 1) * k)
        particles.stats = {"hist": hist.reshape(plocal.n + 1, k)[1:]}
    rox = tile_roxels(values, local.labels, y0, x0, r, k)
    v = values.astype(np.int64, copy=False)
    return TileResult(grains, particles, rox, tile_edges(v, k), v[0].copy(), v[-1].copy(),
                      v[:, 0].copy(), v[:, -1].copy(), time.perf_counter() - t0)


class _Done:
    """A finished 'future' (the synchronous scheduler)."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self.value = fn(*args)

    def result(self) -> Any:
        return self.value


class _Executor:
    """Runs tile work: local threads (default), inline (``"sync"``), or a
    ``dask.distributed`` scheduler at an address; ``submit(fn, *args).result()``."""

    def __init__(self, scheduler: str | None, workers: int | None = None) -> None:
        self.kind = "threads"
        self.pool: Any = None
        self.client: Any = None
        if scheduler in ("sync", "synchronous"):
            self.kind, self.workers = "sync", 1
        elif scheduler in (None, "threads"):
            from concurrent.futures import ThreadPoolExecutor

            self.workers = workers or os.cpu_count() or 1
            self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="mis-ingest")
        else:
            try:
                from distributed import Client
            except ImportError:
                raise IngestError("--scheduler ADDRESS needs dask.distributed: pip install distributed") from None
            self.kind = "distributed"
            self.client = Client(scheduler)
            self.workers = max(1, sum(self.client.nthreads().values()))

    def submit(self, fn: Any, *args: Any) -> Any:
        if self.kind == "sync":
            return _Done(fn, *args)
        if self.kind == "distributed":
            return self.client.submit(fn, *args, pure=False)
        return self.pool.submit(fn, *args)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.client is not None:
            self.client.close()


# --------------------------------------------------------------------------- pending roxels
_CAND = np.dtype([("pending", "<i8"), ("key", "<i8"), ("is_ref", "u1"), ("count", "<i8"), ("label", "<i8")])


class _Pending:
    """Roxels waiting for grains still open below them, spilled to temporary files."""

    def __init__(self, k: int) -> None:
        self.dtype = roxel_dtype(k)
        self.rox = tempfile.TemporaryFile(prefix="mis-roxels-")
        self.cand = tempfile.TemporaryFile(prefix="mis-candidates-")
        self.n = 0
        self.n_cand = 0

    def add(self, records: np.ndarray, cand: np.ndarray) -> None:
        records.tofile(self.rox)
        cand.tofile(self.cand)
        self.n += records.shape[0]
        self.n_cand += cand.shape[0]

    def drain(self, ref_grain: NDArray[np.int64], ref_label: NDArray[np.int64], block: int = 1 << 16):
        """Yield the pending roxel records with their dominant grain resolved."""
        self.rox.flush()
        self.cand.flush()
        self.rox.seek(0)
        self.cand.seek(0)
        carry = np.empty(0, dtype=_CAND)
        done = 0
        while done < self.n:
            recs = np.fromfile(self.rox, dtype=self.dtype, count=min(block, self.n - done))
            hi = done + recs.shape[0]
            parts = [carry]
            while not parts[-1].size or parts[-1]["pending"][-1] < hi:
                more = np.fromfile(self.cand, dtype=_CAND, count=block)
                if not more.size:
                    break
                parts.append(more)
            cand = np.concatenate(parts)
            cut = int(np.searchsorted(cand["pending"], hi))
            cand, carry = cand[:cut], cand[cut:]
            ref = cand["is_ref"].astype(bool)
            key = cand["key"].copy()
            label = cand["label"].copy()
            key[ref] = ref_grain[cand["key"][ref]]
            label[ref] = ref_label[cand["key"][ref]]
            recs["dominant_grain_id"] = pick_dominant(cand["pending"] - done, key, cand["count"], label,
                                                      recs.shape[0])
            yield recs
            done = hi

    def close(self) -> None:
        self.rox.close()
        self.cand.close()


# --------------------------------------------------------------------------- summary
@dataclass
class IngestSummary:
    """What an ingestion wrote, and how long each stage took (seconds)."""

    run_id: int
    image_id: int
    name: str
    replaced_run_id: int | None
    grains: int
    roxels: int
    particles: int
    classes: list[ClassInfo]
    rock: RockResult
    seconds: dict[str, float] = field(default_factory=dict)
    rows_per_second: float = 0.0
    positions: str = "desurvey"
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        by_uri = {c.uri: c for c in self.classes}
        lines = [f"run {self.run_id} ({self.name!r}) of image {self.image_id}"
                 + (f", replacing run {self.replaced_run_id}" if self.replaced_run_id else "")
                 + f": {self.grains:,} grains, {self.roxels:,} roxels"
                 + f" ({self.rows_per_second:,.0f} rows/s)"]
        if self.rock.area_fraction:
            lines.append("modal mineralogy (area %, wt %):")
            wt = self.rock.wt_fraction or {}
            for uri, a in sorted(self.rock.area_fraction.items(), key=lambda t: -t[1]):
                c = by_uri[uri]
                w = f"{100 * wt[uri]:6.2f}" if uri in wt else "     -"
                lines.append(f"  {c.symbol:<8} {c.label:<24} {100 * a:6.2f} {w}")
        rules = self.rock.grain_size.get("rules")
        if rules:
            lines.append(describe_rules(rules))
        if self.rock.lithology_uri:
            lines.append(f"lithology ({self.rock.lithology_source}): {local_name(self.rock.lithology_uri)}")
        lines.append("time per stage: " + ", ".join(f"{k} {v:.2f} s" for k, v in self.seconds.items()))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


# --------------------------------------------------------------------------- ingestion
def ingest(
    image_id: int,
    labels: Any,
    probability: Any = None,
    classes: Sequence[str] | None = None,
    *,
    name: str = "default",
    provenance: Provenance | None = None,
    roxel_size: int = DEFAULT_ROXEL_SIZE,
    url: str | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    lithology: str | None = None,
    liberation: Sequence[str] | None = None,
    liberation_classes: LiberationClasses = LiberationClasses(),  # noqa: B008 - a frozen dataclass
    grain_rules: GrainRules = GrainRules(),  # noqa: B008 - a frozen dataclass
    console: Any = None,
) -> IngestSummary:
    """Write one segmentation run of image ``image_id`` from its class map; see the module
    docstring. ``classes``: the ordered class list (concept URIs or terms such as "Ccp");
    ``liberation``: minerals whose liberation to report (default: the sulfides and native
    elements of the class list); ``lithology``: a lithology term/URI (else a rule proposes
    one). ``grain_rules``: how the class map is cleaned and grains split before they are
    labelled (:mod:`mis.grains.cleaning`; default: the default minimum grain size and
    boundary cuts), stated in the run's parameters. Re-running with the same ``name``
    replaces the run atomically."""
    from mis.catalogue.locate import database_url
    from mis.catalogue.session import transaction
    from mis.imagery.chunks import chunk_index_to_key

    url = url or database_url()
    # main-thread stages; "chunks (workers)" sums the parallel per-chunk work (read, label,
    # statistics, outline pieces) and "waiting" is the main thread waiting for it
    times = {"chunks (workers)": 0.0, "waiting": 0.0, "merge": 0.0, "metrics": 0.0, "roxels": 0.0, "write": 0.0}
    t_start = time.perf_counter()
    labels = open_array(labels)
    probability = open_array(probability)
    if classes is None:
        raise IngestError("give the run's ordered class list (concept URIs or terms)")

    with transaction(url) as session:
        info = _image_info(session, image_id)
        uris = resolve_classes(session, list(classes))
        try:
            cls = load_classes(session, uris)
        except (LookupError, ValueError) as exc:
            raise IngestError(str(exc)) from None
        lith_uri = None
        if lithology:
            from mis.vocab.lookup import TermIndex

            try:
                lith_uri = lithology if "://" in lithology else \
                    TermIndex.from_session(session, ["lithology"]).resolve(lithology, "lithology").uri
            except LookupError as exc:
                raise IngestError(f"lithology: {exc}") from None
        lib_idx: list[int] = []
        if liberation is None:
            lib_idx = [c.index for c in cls if c.is_mineral and c.mineral_class in DEFAULT_LIBERATION_CLASSES]
        else:
            by_uri = {c.uri: c.index for c in cls}
            for u in resolve_classes(session, list(liberation)):
                if u not in by_uri:
                    raise IngestError(f"liberation: {u} is not one of the run's classes")
                lib_idx.append(by_uri[u])
        positioner = load_positioner(session, info.drillcore_id, info.plug_id)
        if positioner.method == "none":
            raise IngestError(f"image {image_id}: {positioner.note}; roxels need a position")

    H, W = info.shape[1], info.shape[2]
    if tuple(labels.shape) != (H, W):
        raise IngestError(f"the label array is {tuple(labels.shape)} but image {image_id} is {H} x {W} pixels")
    if probability is not None and tuple(probability.shape) != (H, W):
        raise IngestError(f"the probability array is {tuple(probability.shape)}, not {H} x {W}")
    tile = (info.chunks[1], info.chunks[2])
    try:
        check_roxel_size(roxel_size, tile)
    except ValueError as exc:
        raise IngestError(str(exc)) from None
    k = len(cls)
    grain_lut = ignore_lut([c.index for c in cls if not c.forms_grains], k - 1)
    particle_lut = np.array([1 if c.is_sample else 0 for c in cls], dtype=np.int32) if lib_idx else None
    n_ty, n_tx = -(-H // tile[0]), -(-W // tile[1])
    chunk_keys = [chunk_index_to_key((iy, ix), info.chunks, info.shape)
                  for iy in range(n_ty) for ix in range(n_tx)]
    notes = [positioner.note] if positioner.note else []

    provenance = provenance or Provenance()
    if provenance.input_checksum is None:
        provenance.input_checksum = info.checksum
    provenance.parameters = {**{"roxel_size": roxel_size, "connectivity": 4,
                                "liberation_bounds": list(liberation_classes.bounds),
                                "grains": grain_rules.parameters(info.pixel_size_um)},
                             **(provenance.parameters or {})}

    grains_stream = ComponentStream((H, W), tile, GRAIN_REDUCERS, ragged=("pieces", "refs"))
    particle_stream = ComponentStream((H, W), tile, {"hist": "sum"}) if particle_lut is not None else None
    rock = RockAccumulator(cls, info.pixel_size_um, lib_idx, liberation_classes,
                           grain_rules=provenance.parameters["grains"])
    pending = _Pending(k)
    ref_grain: list[NDArray[np.int64]] = []
    ref_label: list[NDArray[np.int64]] = []
    ref_ids: list[NDArray[np.int64]] = []
    next_ref = 0
    n_grains = n_roxels = 0
    executor = _Executor(scheduler)
    bar = _Bar(progress, n_ty * n_tx, console)

    def rows_cb(table: str, n: int) -> None:
        bar.rows(n)

    boxes = [box for _, row in tile_rows((H, W), tile) for box in row]
    window = 2 * executor.workers  # tiles in flight: memory is bounded by chunks, not the image
    class_frontier = np.full(W, -1, dtype=np.int64)  # class of the bottom pixel of the last tile per column
    prev_right: np.ndarray | None = None
    try:
        with RunWriter(url, image_id=image_id, name=name, classes=cls, provenance=provenance,
                       roxel_size=roxel_size, chunk_keys=chunk_keys, on_rows=rows_cb) as writer:
            inflight: list[Any] = []
            submitted = 0
            for _ in range(len(boxes)):
                t0 = time.perf_counter()
                while submitted < len(boxes) and len(inflight) < window:
                    inflight.append(executor.submit(_process_tile, labels, probability, boxes[submitted], (H, W),
                                                    grain_lut, particle_lut, k, roxel_size, grain_rules,
                                                    info.pixel_size_um, tile))
                    submitted += 1
                res: TileResult = inflight.pop(0).result()
                times["waiting"] += time.perf_counter() - t0
                times["chunks (workers)"] += res.seconds
                g = res.grains
                t0 = time.perf_counter()
                # class-boundary edges inside the tile and across its top and left edges
                rock.add_edges(res.edges)
                rock.add_pixels(res.roxels.counts)
                above = class_frontier[g.x0 : g.x0 + g.w]
                if g.iy > 0:
                    rock.add_edges(edge_counts(above, res.top, k))
                if g.ix > 0 and prev_right is not None:
                    rock.add_edges(edge_counts(prev_right, res.left, k))
                class_frontier[g.x0 : g.x0 + g.w] = res.bottom
                prev_right = res.right

                merged = grains_stream.push_tile(g)
                if particle_stream is not None:
                    # particles are labelled in every tile when there is a particle stream
                    if res.particles is None:
                        raise IngestError(f"tile at ({g.iy}, {g.ix}): no particle components were labelled")
                    rock.add_particles(particle_stream.push_tile(res.particles).final.stats["hist"])
                times["merge"] += time.perf_counter() - t0

                # grains completed by this tile
                t0 = time.perf_counter()
                table = grain_metrics(merged.final, info.pixel_size_um)
                times["metrics"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                ids = writer.reserve_grain_ids(len(table))
                writer.write_grains(table, ids)
                times["write"] += time.perf_counter() - t0
                rock.add_grains(table.class_index, table.ecd_um, table.area_um2, table.touches_border)
                n_grains += len(table)
                refs = merged.final.ragged["refs"]
                if refs.values.size:
                    owner = np.repeat(np.arange(len(table)), refs.lengths())
                    ref_ids.append(refs.values.astype(np.int64))
                    ref_grain.append(ids[owner])
                    ref_label.append(table.label[owner])

                # roxels of this tile
                t0 = time.perf_counter()
                records, next_ref = _tile_roxels(res, merged, ids, table, info, positioner, roxel_size,
                                                 k, pending, grains_stream, next_ref)
                n_roxels += records.shape[0]
                times["roxels"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                writer.write_roxels(records)
                times["write"] += time.perf_counter() - t0
                bar.advance(1)

            # roxels that waited for grains still open when their tile was done
            t0 = time.perf_counter()
            rg = np.zeros(next_ref, dtype=np.int64)
            rl = np.zeros(next_ref, dtype=np.int64)
            if ref_ids:
                ids_all = np.concatenate(ref_ids)
                rg[ids_all] = np.concatenate(ref_grain)
                rl[ids_all] = np.concatenate(ref_label)
            n_roxels += pending.n
            for recs in pending.drain(rg, rl):
                writer.write_roxels(recs)
            result = rock.result(lith_uri)
            writer.write_rock(result, info.plug_id)
            writer.commit()
            times["write"] += time.perf_counter() - t0
            run_id, replaced = writer.run_id, writer.replaced
            rps = writer.rows_per_second()
    finally:
        pending.close()
        bar.stop()
        executor.close()
    times["total"] = time.perf_counter() - t_start
    return IngestSummary(
        run_id=int(run_id), image_id=image_id, name=name, replaced_run_id=replaced, grains=n_grains,  # type: ignore[arg-type]
        roxels=n_roxels, particles=rock.n_particles, classes=cls, rock=result, seconds=times,
        rows_per_second=rps, positions=positioner.method, notes=notes,
    )


def _tile_roxels(res: TileResult, merged: Any, ids: NDArray[np.int64], table: GrainTable,
                 info: ImageInfo, positioner: HolePositioner, r: int, k: int, pending: _Pending,
                 stream: ComponentStream, next_ref: int) -> tuple[np.ndarray, int]:
    """Roxel records of one tile whose dominant grain is known; the others go to
    ``pending`` with their candidates (open grains get a reference attached to them)."""
    rx = res.roxels
    nr = rx.rows.size
    rec = np.empty(nr, dtype=roxel_dtype(k))
    rec["row"], rec["col"] = rx.rows, rx.cols
    frac, dom, domf = composition(rx.counts, rx.pixels)
    rec["composition"], rec["dominant_class"], rec["dominant_fraction"] = frac, dom, domf
    depth = info.depth.roxel_depths(rx.rows, rx.cols, r)
    rec["depth_m"] = depth
    rec["lon"], rec["lat"], rec["z"] = positioner.positions(depth)
    fo = merged.final_of[rx.pair_label]
    oo = merged.open_of[rx.pair_label]
    is_open = oo >= 0
    waiting = np.zeros(nr, dtype=bool)
    waiting[rx.pair_roxel[is_open]] = True
    fin = (fo >= 0) & ~waiting[rx.pair_roxel]
    rec["dominant_grain_id"] = pick_dominant(rx.pair_roxel[fin], ids[fo[fin]], rx.pair_count[fin],
                                             table.label[fo[fin]], nr)
    if not np.any(waiting):
        return rec, next_ref
    # references for the open grains that are candidates here
    used = np.unique(oo[is_open])
    refs = np.arange(next_ref, next_ref + used.size, dtype=np.int64)
    stream.attach("refs", used, Ragged.singletons(refs))
    ref_lookup = np.full(int(used.max()) + 1, -1, dtype=np.int64)
    ref_lookup[used] = refs
    wait_idx = np.flatnonzero(waiting)
    new_index = np.full(nr, -1, dtype=np.int64)
    new_index[wait_idx] = pending.n + np.arange(wait_idx.size)
    sel = waiting[rx.pair_roxel]
    c = np.empty(int(sel.sum()), dtype=_CAND)
    c["pending"] = new_index[rx.pair_roxel[sel]]
    o, f = oo[sel], fo[sel]
    isref = o >= 0
    c["is_ref"] = isref
    c["key"][isref] = ref_lookup[o[isref]]
    c["key"][~isref] = ids[f[~isref]]
    c["label"][isref] = 0
    c["label"][~isref] = table.label[f[~isref]]
    c["count"] = rx.pair_count[sel]
    c = c[np.argsort(c["pending"], kind="stable")]
    pending.add(rec[wait_idx], c)
    return rec[~waiting], next_ref + used.size


# --------------------------------------------------------------------------- progress
class _Bar:
    """A rich progress bar: chunks done, rows written and rows/s."""

    def __init__(self, enabled: bool, total: int, console: Any = None) -> None:
        self.progress = None
        self.n_rows = 0
        self.t0 = time.perf_counter()
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(), TextColumn("chunks"),
            TextColumn("{task.fields[rows]:>12,} rows  {task.fields[rate]:>10,.0f} rows/s"),
            TimeElapsedColumn(), console=console, transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task("ingest", total=total, rows=0, rate=0.0)

    def rows(self, n: int) -> None:
        self.n_rows += n
        self._update()

    def advance(self, n: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, n)
        self._update()

    def _update(self) -> None:
        if self.progress is not None:
            dt = time.perf_counter() - self.t0
            self.progress.update(self.task, rows=self.n_rows, rate=self.n_rows / dt if dt > 0 else 0.0)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()

