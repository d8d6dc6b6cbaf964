"""Write one segmentation run (grains, roxels, rock) with PostgreSQL binary COPY.

All-or-nothing, with replacement: a :class:`RunWriter` is **one transaction** on one
psycopg 3 connection. Opening it takes a transaction-level advisory lock on
``(image, run name)`` (two ingestions of the same run queue up instead of deadlocking),
inserts the new run row and creates the run's two partitions as bare tables
(:mod:`mis.catalogue.partitions`); rows are then streamed into them with
``COPY ... FROM STDIN (FORMAT BINARY)``. :meth:`RunWriter.commit` checks the run, attaches
its partitions, drops the partitions of the run it replaces and flips the run to
``complete``. Readers see the old run until that commit and the whole new run after
it, never a mix. A process killed at any moment (SIGKILL, power cut) leaves an open
transaction that PostgreSQL rolls back when the connection drops: the previous run is
untouched and the bare tables never existed.

Speed. Rows arrive as numpy arrays and are encoded column-wise into the COPY binary
format (big-endian fields with length words, ``real[]`` with its array header, PointZ as
33-byte EWKB) with structured numpy dtypes: no Python loop per roxel. Grains have two
variable-length fields (outline WKB, ``chunk_keys text[]``) and are joined per row,
which is fine at one grain per hundreds of pixels. Encoded rows are buffered per table
and sent in one ``COPY`` per ~4 MiB block.

On the server, COPY into a table without indexes or foreign keys only appends to the
heap. The twelve indexes of ``grain`` and ``roxel`` are built when the partitions are
attached, each in one sorted pass (about twice as fast as maintaining them row by row),
and PostgreSQL checks each foreign key (classes and minerals against ``concept``, each
roxel's dominant grain against the run's grains) with one join instead of a trigger
query per row. Before attaching, the writer also checks what no constraint can: every
row it counted is there, and every class is one of the run's classes.

Locks. Attaching takes SHARE UPDATE EXCLUSIVE on ``grain`` and ``roxel`` (readers and
other writers' COPYs go on; a second attach waits for this commit), and dropping the
replaced run's partitions ACCESS EXCLUSIVE, which is why that is the last step before
the commit (readers wait milliseconds, not for the whole ingestion).

Grain ids are reserved from the table's identity sequence (``nextval``) before their rows
are written, so roxels can point at their dominant grain in the same stream; a rolled
back run only leaves a gap in the sequence.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mis.catalogue import partitions
from mis.catalogue.postgres import libpq_url
from mis.grains.roxels import POINTZ_EWKB, pointz_ewkb

__all__ = [
    "Provenance",
    "RunWriter",
    "RunWriterError",
    "COPY_SIGNATURE",
    "COPY_TRAILER",
    "ROXEL_COLUMNS",
    "GRAIN_COLUMNS",
    "encode_roxels",
    "encode_grains",
    "libpq_url",
]

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)
_FLOAT4_OID = 700
_TEXT_OID = 25
_BLOCK_BYTES = 4 << 20  # flush a table's buffer to the server every ~4 MiB

ROXEL_COLUMNS = ("run_id", "row", "col", "composition", "dominant_class_id", "dominant_fraction",
                 "dominant_grain_id", "depth_m", "position")
_GRAIN_REAL = ("centroid_x_um", "centroid_y_um", "area_um2", "perimeter_um", "ecd_um", "major_axis_um",
               "minor_axis_um", "orientation_deg", "aspect_ratio", "solidity", "form_factor", "roundness",
               "feret_max_um", "feret_min_um")
GRAIN_COLUMNS = ("id", "run_id", "label", "mineral_id", *_GRAIN_REAL, "mean_probability",
                 "touches_border", "outline", "chunk_keys")


class RunWriterError(RuntimeError):
    """A run cannot be written (unknown image, bad class list, ...); nothing was written."""


@dataclass
class Provenance:
    """Where a run's classification came from (stored on the ``segmentation_run`` row)."""

    model_path: str | None = None
    model_sha256: str | None = None
    feature_config: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    input_checksum: str | None = None
    software_version: str | None = None


# --------------------------------------------------------------------------- encoding
def _field(dtype: str, size: int) -> list[tuple[str, Any]]:
    return [("len", ">i4"), ("val", dtype)] if size else [("len", ">i4")]


def _roxel_dtype(k: int, grain: bool, depth: bool, position: bool) -> np.dtype:
    fields: list[tuple[str, Any] | tuple[str, Any, tuple[int, ...]]] = [
        ("n", ">i2"),
        ("run_len", ">i4"), ("run", ">i8"),
        ("row_len", ">i4"), ("row", ">i4"),
        ("col_len", ">i4"), ("col", ">i4"),
        ("comp_len", ">i4"), ("ndim", ">i4"), ("hasnull", ">i4"), ("oid", ">i4"), ("dim", ">i4"),
        ("lb", ">i4"), ("comp", [("len", ">i4"), ("val", ">f4")], (k,)),
        ("cls_len", ">i4"), ("cls", ">i4"),
        ("frac_len", ">i4"), ("frac", ">f4"),
        ("grain_len", ">i4"),
    ]
    if grain:
        fields.append(("grain", ">i8"))
    fields.append(("depth_len", ">i4"))
    if depth:
        fields.append(("depth", ">f8"))
    fields.append(("pos_len", ">i4"))
    if position:
        fields.append(("pos", POINTZ_EWKB))
    return np.dtype(fields)


def encode_roxels(records: np.ndarray, run_id: int, class_concept_ids: NDArray[np.integer]) -> bytes:
    """COPY BINARY rows (no signature/trailer) for :data:`ROXEL_COLUMNS` from roxel records
    (:func:`mis.grains.roxels.roxel_dtype`). Rows come out grouped by NULL pattern."""
    n = records.shape[0]
    if n == 0:
        return b""
    k = records.dtype["composition"].shape[0] if records.dtype["composition"].shape else 1
    concept = np.asarray(class_concept_ids, dtype=np.int64)
    has_grain = records["dominant_grain_id"] >= 0
    has_depth = np.isfinite(records["depth_m"])
    has_pos = np.isfinite(records["lon"]) & np.isfinite(records["lat"]) & np.isfinite(records["z"])
    pattern = has_grain.astype(np.int8) | (has_depth.astype(np.int8) << 1) | (has_pos.astype(np.int8) << 2)
    out = []
    patterns = np.unique(pattern)
    for pat in patterns:
        rec = records if patterns.size == 1 else records[pattern == pat]
        g, d, p = bool(pat & 1), bool(pat & 2), bool(pat & 4)
        o = np.empty(rec.shape[0], dtype=_roxel_dtype(k, g, d, p))
        o["n"] = len(ROXEL_COLUMNS)
        o["run_len"], o["run"] = 8, run_id
        o["row_len"], o["row"] = 4, rec["row"]
        o["col_len"], o["col"] = 4, rec["col"]
        o["comp_len"] = 20 + 8 * k
        o["ndim"], o["hasnull"], o["oid"], o["dim"], o["lb"] = 1, 0, _FLOAT4_OID, k, 1
        o["comp"]["len"] = 4
        o["comp"]["val"] = rec["composition"].reshape(-1, k)
        o["cls_len"], o["cls"] = 4, concept[rec["dominant_class"]]
        o["frac_len"], o["frac"] = 4, rec["dominant_fraction"]
        if g:
            o["grain_len"], o["grain"] = 8, rec["dominant_grain_id"]
        else:
            o["grain_len"] = -1
        if d:
            o["depth_len"], o["depth"] = 8, rec["depth_m"]
        else:
            o["depth_len"] = -1
        if p:
            o["pos_len"] = 33
            o["pos"] = pointz_ewkb(rec["lon"], rec["lat"], rec["z"])
        else:
            o["pos_len"] = -1
        out.append(o.tobytes())
    return b"".join(out)


def _grain_fixed_dtype(prob: bool) -> np.dtype:
    fields: list[tuple[str, Any] | tuple[str, Any, tuple[int, ...]]] = [
        ("n", ">i2"), ("id_len", ">i4"), ("id", ">i8"), ("run_len", ">i4"), ("run", ">i8"),
        ("label_len", ">i4"), ("label", ">i8"), ("min_len", ">i4"), ("min", ">i4"),
    ]
    for name in _GRAIN_REAL:
        fields += [(name + "_len", ">i4"), (name, ">f4")]
    fields.append(("prob_len", ">i4"))
    if prob:
        fields.append(("prob", ">f4"))
    fields += [("border_len", ">i4"), ("border", "u1"), ("outline_len", ">i4")]
    return np.dtype(fields)


def _text_array(keys: Sequence[str]) -> bytes:
    """A ``text[]`` field (length word + array header + elements) in COPY binary form."""
    body = b"".join(struct.pack(">i", len(b)) + b for b in (k.encode() for k in keys))
    return struct.pack(">iiiiii", 20 + len(body), 1, 0, _TEXT_OID, len(keys), 1) + body


def encode_grains(table: Any, ids: NDArray[np.int64], run_id: int, mineral_ids: NDArray[np.integer],
                  chunk_keys: Sequence[str]) -> bytes:
    """COPY BINARY rows for :data:`GRAIN_COLUMNS` from a :class:`mis.grains.metrics.GrainTable`.

    ``mineral_ids`` maps class index -> concept id; ``chunk_keys`` tile id -> zarr key.
    The fixed-width part of every row is one numpy record; the outline (WKB) and the
    chunk keys are joined to it per row.
    """
    import shapely

    n = len(table)
    if n == 0:
        return b""
    wkb = shapely.to_wkb(table.outline, byte_order=1, output_dimension=2)
    wkb_len = np.fromiter((len(w) for w in wkb), dtype=np.int64, count=n)
    prob = np.isfinite(table.mean_probability)
    concept = np.asarray(mineral_ids, dtype=np.int64)
    # chunk keys: a grain in one chunk (most) is looked up by its tile id
    tiles = table.tiles
    lens = tiles.lengths()
    keys: list[bytes] = [b""] * n
    first = tiles.values[tiles.offsets[:-1][lens == 1]] if np.any(lens == 1) else np.empty(0, np.int64)
    single_key = {t: _text_array([chunk_keys[t]]) for t in np.unique(first).tolist()}
    for i, t in zip(np.flatnonzero(lens == 1).tolist(), first.tolist(), strict=True):  # one first tile each
        keys[i] = single_key[t]
    for i in np.flatnonzero(lens != 1).tolist():
        keys[i] = _text_array([chunk_keys[t] for t in tiles[i].tolist()])
    out: list[bytes] = []
    for pat in (True, False):
        sel = np.flatnonzero(prob == pat)
        if sel.size == 0:
            continue
        o = np.empty(sel.size, dtype=_grain_fixed_dtype(pat))
        o["n"] = len(GRAIN_COLUMNS)
        o["id_len"], o["id"] = 8, ids[sel]
        o["run_len"], o["run"] = 8, run_id
        o["label_len"], o["label"] = 8, table.label[sel]
        o["min_len"], o["min"] = 4, concept[table.class_index[sel]]
        for name in _GRAIN_REAL:
            o[name + "_len"], o[name] = 4, getattr(table, name)[sel]
        if pat:
            o["prob_len"], o["prob"] = 4, table.mean_probability[sel]
        else:
            o["prob_len"] = -1
        o["border_len"], o["border"] = 1, table.touches_border[sel]
        o["outline_len"] = wkb_len[sel]
        fixed = o.tobytes()
        size = o.dtype.itemsize
        parts = [fixed[j * size : (j + 1) * size] for j in range(sel.size)]
        sl = sel.tolist()
        out.append(b"".join(b"".join(t) for t in zip(parts, (wkb[i] for i in sl), (keys[i] for i in sl), strict=True)))
    return b"".join(out)


# --------------------------------------------------------------------------- the writer
class RunWriter:
    """One segmentation run, written in one transaction (see the module docstring).

    Use as a context manager; leaving the block without :meth:`commit` (an exception,
    Ctrl-C) rolls everything back::

        with RunWriter(url, image_id=7, name="default", classes=classes) as w:
            ids = w.reserve_grain_ids(len(table))
            w.write_grains(table, ids)
            w.write_roxels(records)
            w.write_rock(result, plug_id)
            w.commit()

    ``classes``: the run's ordered classes, objects with ``uri`` and ``concept_id``
    (:class:`mis.grains.rock.ClassInfo`). ``chunk_keys[t]`` is the zarr chunk key of tile
    ``t`` (grains' ``chunk_keys``).
    """

    def __init__(self, url: str, *, image_id: int, name: str, classes: Sequence[Any],
                 provenance: Provenance | None = None, roxel_size: int = 16,
                 chunk_keys: Sequence[str] = (), on_rows: Callable[[str, int], None] | None = None) -> None:
        self.url = url
        self.image_id = int(image_id)
        self.name = name
        self.classes = list(classes)
        self.provenance = provenance or Provenance()
        self.roxel_size = int(roxel_size)
        self.chunk_keys = list(chunk_keys)
        self.on_rows = on_rows
        self.concept_ids = np.array([c.concept_id for c in self.classes], dtype=np.int64)
        self.conn: Any = None
        self.run_id: int | None = None
        self.replaced: int | None = None  # id of the run this one replaces
        self.tables: dict[str, str] = {}  # grain/roxel -> this run's bare partition
        self.rows = {"grain": 0, "roxel": 0}
        self.bytes = 0
        self._buffers: dict[str, list[bytes]] = {"grain": [], "roxel": []}
        self._buffered: dict[str, int] = {"grain": 0, "roxel": 0}
        self._pending_rows: dict[str, int] = {"grain": 0, "roxel": 0}
        self.committed = False
        self.started = time.perf_counter()

    # -- lifecycle
    def __enter__(self) -> RunWriter:
        self.open()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self.committed:
            self.abort()

    def open(self) -> None:
        import psycopg
        from psycopg.types.json import Jsonb

        from mis import __version__

        if not self.classes:
            raise RunWriterError("a run needs at least one class")
        self.conn = psycopg.connect(libpq_url(self.url), autocommit=False)
        try:
            cur = self.conn.cursor()
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                        (f"mis.run/{self.image_id}/{self.name}",))
            if cur.execute("SELECT 1 FROM image WHERE id = %s", (self.image_id,)).fetchone() is None:
                raise RunWriterError(f"image {self.image_id}: no such image")
            self._check_classes(cur)
            row = cur.execute("SELECT id FROM segmentation_run WHERE image_id = %s AND name = %s FOR UPDATE",
                              (self.image_id, self.name)).fetchone()
            if row is not None:  # out of the new run's way; it goes at the commit
                self.replaced = int(row[0])
                cur.execute("UPDATE segmentation_run SET name = '(replaced) ' || name WHERE id = %s",
                            (self.replaced,))
            cur.execute(partitions.MANUAL)
            p = self.provenance
            self.run_id = int(cur.execute(
                "INSERT INTO segmentation_run (image_id, name, model_path, model_sha256, feature_config, "
                "parameters, software_version, input_checksum, roxel_size, status, started_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'running', clock_timestamp()) RETURNING id",
                (self.image_id, self.name, p.model_path, p.model_sha256, Jsonb(p.feature_config or {}),
                 Jsonb(p.parameters or {}), p.software_version or __version__, p.input_checksum,
                 self.roxel_size)).fetchone()[0])
            with cur.copy("COPY run_class (run_id, class_index, concept_uri) FROM STDIN") as copy:
                for i, c in enumerate(self.classes):
                    copy.write_row((self.run_id, i, c.uri))
            self.tables = {t: partitions.create_bare(cur, t, self.run_id) for t in partitions.TABLES}
        except psycopg.Error as exc:
            self.abort()
            raise RunWriterError(f"run refused (nothing written): {exc}") from exc
        except BaseException:
            self.abort()
            raise

    def _check_classes(self, cur: Any) -> None:
        """Each class's concept id is the one its URI has in the vocabulary."""
        uris = [c.uri for c in self.classes]
        found = cur.execute("SELECT u.uri, c.id FROM unnest(%s::text[]) WITH ORDINALITY u(uri, k) "
                            "LEFT JOIN concept c ON c.uri = u.uri ORDER BY u.k", (uris,)).fetchall()
        # one row per class URI (unnest ... WITH ORDINALITY, left join on the unique concept URI)
        for (uri, cid), given in zip(found, self.concept_ids.tolist(), strict=True):
            if cid is None:
                raise RunWriterError(f"class {uri}: not in the vocabulary")
            if cid != given:
                raise RunWriterError(f"class {uri}: concept id is {cid}, not {given}")

    def verify(self) -> None:
        """What no constraint checks: every row written is there, and every grain mineral
        and roxel class is one of the run's classes (the foreign keys only say "a concept")."""
        self.flush()
        ids = [int(v) for v in self.concept_ids]
        problems = []
        with self.conn.cursor() as cur:
            for table, column in (("grain", "mineral_id"), ("roxel", "dominant_class_id")):
                rows, foreign = cur.execute(
                    f"SELECT count(*), count(*) FILTER (WHERE {column} <> ALL(%s)) "
                    f"FROM {self.tables[table]}", (ids,)).fetchone()
                if rows != self.rows[table]:
                    problems.append(f"{self.rows[table]} {table}s were written but {rows} arrived")
                if foreign:
                    problems.append(f"{foreign} {table}s name a class outside the run's list")
        if problems:
            raise RunWriterError("run refused (nothing written): " + "; ".join(problems))

    def abort(self) -> None:
        """Roll back and close (nothing of this run is kept; the previous run stays)."""
        if self.conn is not None and not self.conn.closed:
            try:
                self.conn.rollback()
            finally:
                self.conn.close()

    def commit(self) -> None:
        """Write what is buffered, check and attach the run, retire the one it replaces, commit."""
        import psycopg

        self.verify()
        with self.conn.cursor() as cur:
            # Statistics come with the rows (~0.3 s, a 30,000-row sample whatever the run's
            # size): the first queries plan with them and count estimates and extents see
            # the run. Autovacuum would analyze the new tables too, but only after a delay.
            cur.execute("ANALYZE " + ", ".join(self.tables.values()))
            try:
                partitions.attach(cur, self.run_id)  # type: ignore[arg-type]
            except psycopg.Error as exc:
                raise RunWriterError(f"run refused (nothing written): {exc}") from exc
            if self.replaced is not None:
                partitions.drop(cur.execute, [self.replaced])
                cur.execute("DELETE FROM rock WHERE run_id = %s", (self.replaced,))
                cur.execute("DELETE FROM segmentation_run WHERE id = %s", (self.replaced,))
            cur.execute("UPDATE segmentation_run SET status = 'complete', finished_at = clock_timestamp() "
                        "WHERE id = %s", (self.run_id,))
        self.conn.commit()
        self.committed = True
        self.conn.close()

    # -- rows
    def reserve_grain_ids(self, n: int) -> NDArray[np.int64]:
        """``n`` fresh ids from the grain identity sequence."""
        if n <= 0:
            return np.empty(0, dtype=np.int64)
        with self.conn.cursor(binary=True) as cur:
            cur.execute("SELECT nextval(pg_get_serial_sequence('grain', 'id')) FROM generate_series(1, %s)", (int(n),))
            return np.fromiter((r[0] for r in cur), dtype=np.int64, count=n)

    def write_grains(self, table: Any, ids: NDArray[np.int64]) -> None:
        """Queue a :class:`~mis.grains.metrics.GrainTable` with its reserved ids."""
        if len(table) == 0:
            return
        data = encode_grains(table, ids, self.run_id, self.concept_ids, self.chunk_keys)  # type: ignore[arg-type]
        self._add("grain", data, len(table))

    def write_roxels(self, records: np.ndarray) -> None:
        """Queue roxel records (:func:`mis.grains.roxels.roxel_dtype`)."""
        step = max(1, _BLOCK_BYTES // max(records.dtype.itemsize * 2, 1))
        for i in range(0, records.shape[0], step):
            part = records[i : i + step]
            self._add("roxel", encode_roxels(part, self.run_id, self.concept_ids), part.shape[0])  # type: ignore[arg-type]

    def _add(self, table: str, data: bytes, rows: int) -> None:
        if not data:
            return
        self._buffers[table].append(data)
        self._buffered[table] += len(data)
        self._pending_rows[table] += rows
        if self.on_rows is not None:
            self.on_rows(table, rows)
        if self._buffered[table] >= _BLOCK_BYTES:
            self.flush(table)

    def flush(self, table: str | None = None) -> None:
        """Send buffered rows to the run's bare tables."""
        for t in partitions.TABLES if table is None else (table,):
            if not self._buffers[t]:
                continue
            cols = GRAIN_COLUMNS if t == "grain" else ROXEL_COLUMNS
            with self.conn.cursor() as cur:
                with cur.copy(f"COPY {self.tables[t]} ({', '.join(cols)}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(COPY_SIGNATURE)
                    for block in self._buffers[t]:
                        copy.write(block)
                    copy.write(COPY_TRAILER)
            self.bytes += self._buffered[t]
            self.rows[t] += self._pending_rows[t]
            self._buffers[t], self._buffered[t], self._pending_rows[t] = [], 0, 0

    def write_rock(self, result: Any, plug_id: int) -> int:
        """The rock row and its constituents (:class:`mis.grains.rock.RockResult`)."""
        from psycopg.types.json import Jsonb

        with self.conn.cursor() as cur:
            rock_id = int(cur.execute(
                "INSERT INTO rock (plug_id, run_id, lithology_uri, lithology_source, grain_size, association, "
                "liberation, surface_area) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (plug_id, self.run_id, result.lithology_uri, result.lithology_source,
                 Jsonb(result.grain_size), Jsonb(result.association), Jsonb(result.liberation),
                 Jsonb(result.surface_area))).fetchone()[0])
            rows = [(rock_id, uri, min(max(a, 0.0), 1.0), None if w is None else min(max(w, 0.0), 1.0))
                    for uri, a, w in result.constituents()]
            if rows:
                cur.executemany("INSERT INTO rock_constituent (rock_id, mineral_uri, proportion_area, proportion_wt) "
                                "VALUES (%s, %s, %s, %s)", rows)
        return rock_id

    def rows_per_second(self) -> float:
        dt = time.perf_counter() - self.started
        return (self.rows["grain"] + self.rows["roxel"]) / dt if dt > 0 else 0.0

