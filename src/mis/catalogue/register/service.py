"""The one registration service: files or parsed records in, one transaction, a report out.

``register`` is what ``mis register`` calls and what the API's write endpoints call: the
same reading (:mod:`.tables`), the same rules (:mod:`.validate`), the same writes.

1. read every input into typed tables (file + line provenance);
2. load what the database holds about the deposits and holes they name, and the
   vocabulary;
3. validate everything, collecting **all** findings; any error: write nothing;
4. compare with the database by natural keys (deposit name; hole id within deposit;
   sample id within hole) so that unchanged rows are not touched: registering the same
   data twice changes nothing;
5. desurvey every hole whose collar or surveys changed (minimum curvature, vectorised,
   :func:`mis.drillholes.desurvey.desurvey_batch`), and place its samples at mid-depth
   on the new trace (:meth:`~mis.drillholes.desurvey.Trace.position_at`);
6. write with bulk statements (``COPY`` into temporary tables, then
   ``INSERT .. ON CONFLICT DO UPDATE``), all in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mis.catalogue.queries import HOLE_WITH_DEPOSIT
from mis.catalogue.register.tables import KINDS, Finding, Table, error, read_file, sort_findings
from mis.catalogue.register.validate import (
    DEFAULT_DOGLEG_LIMIT,
    DEPOSIT_FIELDS,
    GEOMETRY_FIELDS,
    HOLE_FIELDS,
    SAMPLE_FIELDS,
    SCHEMES,
    DbDeposit,
    DbHole,
    Options,
    Plan,
    State,
    validate,
)

__all__ = ["Counts", "Input", "RegistrationReport", "register"]

#: What ``register`` accepts per input: a path (kind told by format and columns), a
#: ``(kind, path)`` pair, a :class:`Table`, or a mapping ``{kind: [row dicts]}``.
Input = str | Path | tuple[str, str | Path] | Table | Mapping[str, Iterable[Mapping[str, Any]]]


# --------------------------------------------------------------------------- report
@dataclass
class Counts:
    added: int = 0
    changed: int = 0
    unchanged: int = 0

    def __str__(self) -> str:
        return f"{self.added} added, {self.changed} changed, {self.unchanged} unchanged"


@dataclass
class RegistrationReport:
    """What a registration found and did (or, in a dry run or on errors, would do)."""

    findings: list[Finding]
    dry_run: bool = False
    written: bool = False
    deposits: Counts = field(default_factory=Counts)
    holes: Counts = field(default_factory=Counts)
    samples: Counts = field(default_factory=Counts)
    #: Holes whose survey set was replaced, and the stations written for them.
    survey_sets: int = 0
    survey_stations: int = 0
    #: Holes whose trace was (re)computed, samples whose position was (re)computed.
    traces: int = 0
    positions: int = 0
    sources: list[str] = field(default_factory=list)
    #: With ``create=True``: a record of the input exists already (nothing written).
    conflict: bool = False
    seconds: float = 0.0
    #: Seconds per phase: read, state (database + vocabulary), validate, geometry, write.
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.is_error]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if not f.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def changed(self) -> int:
        """Records added or changed (survey sets count once per hole)."""
        return (self.deposits.added + self.deposits.changed + self.holes.added + self.holes.changed
                + self.samples.added + self.samples.changed + self.survey_sets)

    def summary(self) -> str:
        if not self.ok:
            head = f"{len(self.errors)} error(s), {len(self.warnings)} warning(s): nothing written"
        elif self.dry_run:
            head = f"dry run, nothing written; {len(self.warnings)} warning(s); would change {self.changed} record(s)"
        else:
            head = f"{self.changed} record(s) changed; {len(self.warnings)} warning(s)"
        if not self.ok:
            return head
        verb = "would be " if self.dry_run else ""
        return (f"{head}\n"
                f"  deposits: {self.deposits}\n"
                f"  holes:    {self.holes}\n"
                f"  surveys:  {self.survey_sets} hole(s) with a new survey set ({self.survey_stations} stations)\n"
                f"  samples:  {self.samples}\n"
                f"  {self.traces} trace(s) and {self.positions} sample position(s) {verb}recomputed")

    def render(self) -> str:
        """The findings (one a line, errors first within each line) and the summary."""
        lines = [str(f) for f in self.findings]
        lines.append(self.summary())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (for the API)."""
        return {
            "ok": self.ok, "dry_run": self.dry_run, "written": self.written,
            "errors": [f.message for f in self.errors], "warnings": [f.message for f in self.warnings],
            "deposits": vars(self.deposits), "holes": vars(self.holes), "samples": vars(self.samples),
            "survey_sets": self.survey_sets, "survey_stations": self.survey_stations,
            "traces": self.traces, "positions": self.positions, "changed": self.changed,
        }


# --------------------------------------------------------------------------- inputs
def read_inputs(inputs: Iterable[Input], source: str = "<input>") -> list[Table]:
    """Typed tables from every kind of input ``register`` accepts."""
    tables: list[Table] = []
    for item in inputs:
        if isinstance(item, Table):
            tables.append(item)
        elif isinstance(item, (str, Path)):
            tables.append(read_file(item))
        elif isinstance(item, tuple) and len(item) == 2:
            kind, path = item
            if kind not in KINDS:
                raise ValueError(f"unknown table kind {kind!r}; use one of {', '.join(KINDS)}")
            tables.append(read_file(path, kind))
        elif isinstance(item, Mapping):
            for kind, rows in item.items():
                if kind not in KINDS:
                    raise ValueError(f"unknown table kind {kind!r}; use one of {', '.join(KINDS)}")
                tables.append(Table.from_rows(kind, rows, source=f"{source}:{kind}" if len(item) > 1 else source))
        else:
            raise TypeError(f"cannot register {type(item).__name__}: give paths, (kind, path), Tables or mappings")
    return tables


# --------------------------------------------------------------------------- database state
def _names(tables: list[Table], options: Options) -> tuple[set[str], set[str]]:
    deposits: set[str] = {options.deposit} if options.deposit else set()
    holes: set[str] = set()
    for t in tables:
        key = "name" if t.kind == "deposits" else "deposit"
        for row in t.rows:
            if row.values.get(key):
                deposits.add(row.values[key])
            if t.kind != "deposits" and row.values.get("hole_id"):
                holes.add(row.values["hole_id"])
    return deposits, holes


#: Advisory lock classes (the first key of ``pg_advisory_xact_lock(int, int)``).
LOCK_DEPOSIT, LOCK_HOLE = 7301, 7302


def lock_names(cur, deposit_names: set[str], hole_names: set[str]) -> None:
    """Serialise registrations that name the same deposits or holes.

    A transaction-level advisory lock per deposit name and per hole id (holes by name, in
    any deposit, as :func:`load_state` reads them), taken in one sorted order so that two
    registrations never wait on each other crosswise; PostgreSQL releases them at commit
    or rollback. Taken before the state is read: a registration plans on what the one
    before it committed (READ COMMITTED reads anew at each statement), never on a state
    another is about to overwrite. Names that hash alike only wait for each other.
    """
    names = [(LOCK_DEPOSIT, n) for n in deposit_names] + [(LOCK_HOLE, n) for n in hole_names]
    if not names:
        return
    cur.execute("SELECT DISTINCT k, hashtext(n) FROM unnest(%s::int[], %s::text[]) AS t(k, n)",
                [[k for k, _n in names], [n for _k, n in names]])
    keys = sorted(cur.fetchall())
    # a function scan yields the arrays in order: the locks are taken in the sorted order
    cur.execute("SELECT pg_advisory_xact_lock(k, h) FROM unnest(%s::int[], %s::int[]) AS t(k, h)",
                [[k for k, _h in keys], [h for _k, h in keys]])


def _existing(plan: Plan, state: State) -> list[str]:
    """The deposits, holes and samples of ``plan`` that are registered already."""
    found = [f"deposit {name!r}" for name in plan.deposits if name in state.deposits]
    for key, hole in plan.holes.items():
        db = state.holes.get(key)
        if db is None:
            continue
        if hole.values is not None:
            found.append(f"hole {key[1]!r} of deposit {key[0]!r}")
        found += [f"sample {name!r} of hole {key[1]!r}" for name in hole.samples if name in db.samples]
    return found


_HOLE_COLUMNS = ("id", "deposit_id") + HOLE_FIELDS
_SAMPLE_COLUMNS = ("id", "drillcore_id", "name") + SAMPLE_FIELDS


def load_state(cur, deposit_names: set[str], hole_names: set[str],
               collars_of: AbstractSet[str] = frozenset()) -> State:
    """Deposits by name and holes by name (any deposit), with surveys and samples; for the
    deposits of ``collars_of`` (those whose footprint the input gives anew) the collars of
    all their holes, which the new footprint must still hold."""
    import shapely

    state = State()
    cur.execute(f"SELECT id, name, {', '.join(DEPOSIT_FIELDS)}, ST_AsBinary(footprint) FROM deposit "
                "WHERE name = ANY(%s)", [list(deposit_names)])
    by_id: dict[int, DbDeposit] = {}
    for rec in cur.fetchall():
        values = dict(zip(DEPOSIT_FIELDS, rec[2:-1], strict=False))
        dep = DbDeposit(rec[0], rec[1], values, shapely.from_wkb(rec[-1]) if rec[-1] else None, [])
        state.deposits[dep.name] = by_id[dep.id] = dep
    if by_id:
        cur.execute("SELECT deposit_id, commodity_uri FROM deposit_commodity WHERE deposit_id = ANY(%s) "
                    "ORDER BY deposit_id, rank, commodity_uri", [list(by_id)])
        for dep_id, uri in cur.fetchall():
            by_id[dep_id].commodities.append(uri)
    redefined = [dep.id for dep in by_id.values() if dep.name in collars_of]
    if redefined:
        cur.execute("SELECT deposit_id, name, ST_X(collar), ST_Y(collar) FROM drillcore WHERE deposit_id = ANY(%s) "
                    "ORDER BY deposit_id, name", [redefined])
        for dep_id, hole, lon, lat in cur.fetchall():
            by_id[dep_id].collars.append((hole, lon, lat))
    if not hole_names:
        return state
    cur.execute(f"SELECT d.name, h.name, {', '.join('h.' + c for c in _HOLE_COLUMNS)} FROM {HOLE_WITH_DEPOSIT} "
                "WHERE h.name = ANY(%s)", [list(hole_names)])
    holes: dict[int, DbHole] = {}
    for rec in cur.fetchall():
        values = dict(zip(_HOLE_COLUMNS, rec[2:], strict=False))
        hole = DbHole(values.pop("id"), rec[0], rec[1], values, [], {})
        state.holes[(hole.deposit, hole.name)] = holes[hole.id] = hole
    if holes:
        ids = list(holes)
        cur.execute("SELECT drillcore_id, depth_m, dip, azimuth FROM survey_station WHERE drillcore_id = ANY(%s) "
                    "ORDER BY drillcore_id, depth_m", [ids])
        for hid, depth, dip, azi in cur.fetchall():
            holes[hid].surveys.append((depth, dip, azi))
        cur.execute(f"SELECT {', '.join(_SAMPLE_COLUMNS)} FROM plug WHERE drillcore_id = ANY(%s)", [ids])
        for rec in cur.fetchall():
            holes[rec[1]].samples[rec[2]] = dict(zip(SAMPLE_FIELDS, rec[3:], strict=False))
    return state


# --------------------------------------------------------------------------- changes
@dataclass
class _Change:
    """What differs from the database, per natural key."""

    deposits: dict[str, str] = field(default_factory=dict)  # name -> 'added' | 'changed'
    holes: dict[tuple[str, str], str] = field(default_factory=dict)  # write the drillcore row
    retrace: set[tuple[str, str]] = field(default_factory=set)  # geometry or surveys changed
    surveys: set[tuple[str, str]] = field(default_factory=set)  # survey set replaced
    samples: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)


def _same(a: Any, b: Any) -> bool:
    return a == b


def diff(plan: Plan, state: State, report: RegistrationReport) -> _Change:
    change = _Change()
    for name, dep in plan.deposits.items():
        db = state.deposits.get(name)
        if db is None:
            change.deposits[name] = "added"
            report.deposits.added += 1
        elif (any(not _same(dep.values[f], db.values[f]) for f in DEPOSIT_FIELDS)
              or dep.commodities != db.commodities
              or db.footprint is None or dep.footprint.wkb != db.footprint.wkb):
            change.deposits[name] = "changed"
            report.deposits.changed += 1
        else:
            report.deposits.unchanged += 1
    for key, hole in plan.holes.items():
        known = state.holes.get(key)
        if hole.values is not None:
            if known is None:
                change.holes[key] = "added"
                change.retrace.add(key)
                report.holes.added += 1
            elif any(not _same(hole.values[f], known.values[f]) for f in HOLE_FIELDS):
                change.holes[key] = "changed"
                report.holes.changed += 1
                if any(not _same(hole.values[f], known.values[f]) for f in GEOMETRY_FIELDS):
                    change.retrace.add(key)
            else:
                report.holes.unchanged += 1
        if hole.surveys is not None and (known is None or known.surveys != hole.surveys):
            change.surveys.add(key)
            change.retrace.add(key)
            report.survey_sets += 1
            report.survey_stations += len(hole.surveys)
        samples: dict[str, str] = {}
        for name, values in hole.samples.items():
            old = known.samples.get(name) if known else None
            if old is None:
                samples[name] = "added"
                report.samples.added += 1
            elif any(not _same(values[f], old[f]) for f in SAMPLE_FIELDS):
                samples[name] = "changed"
                report.samples.changed += 1
            else:
                report.samples.unchanged += 1
        if samples:
            change.samples[key] = samples
    for key in change.retrace:
        change.holes.setdefault(key, "trace")
    return change


# --------------------------------------------------------------------------- geometry
@dataclass
class _Geometry:
    """Computed geometry: per hole the collar and trace (EWKB hex), local EPSG; per sample
    its position (EWKB hex)."""

    holes: dict[tuple[str, str], tuple[str, str, int]] = field(default_factory=dict)
    samples: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


def _final_values(key, plan: Plan, state: State) -> dict[str, Any]:
    hole = plan.holes[key]
    return hole.values if hole.values is not None else state.holes[key].values


def _final_surveys(key, plan: Plan, state: State) -> list[tuple[float, float, float]]:
    hole = plan.holes[key]
    if hole.surveys is not None:
        return hole.surveys
    db = state.holes.get(key)
    return db.surveys if db else []


def _final_samples(key, plan: Plan, state: State) -> dict[str, dict[str, Any]]:
    db = state.holes.get(key)
    out = dict(db.samples) if db else {}
    out.update(plan.holes[key].samples)
    return out


_PROJECTED: dict[int, bool] = {}


def _is_projected(epsg: int) -> bool:
    if epsg not in _PROJECTED:
        from pyproj import CRS

        crs = CRS.from_epsg(epsg)
        _PROJECTED[epsg] = bool(crs.is_projected) and all(
            ax.unit_name in ("metre", "meter") for ax in crs.axis_info)
    return _PROJECTED[epsg]


def compute_geometry(plan: Plan, state: State, change: _Change, report: RegistrationReport) -> _Geometry:
    """Desurvey the holes that need it (vectorised, grouped by collar CRS and azimuth
    reference) and place the samples that need it."""
    import shapely

    from mis.drillholes.crs import WGS84, transformer
    from mis.drillholes.desurvey import desurvey_batch

    geo = _Geometry()
    need_positions: dict[tuple[str, str], list[str]] = {}
    for key in change.retrace:
        need_positions[key] = sorted(_final_samples(key, plan, state))
    for key, samples in change.samples.items():
        if key not in change.retrace:
            need_positions[key] = sorted(samples)
    todo = sorted(set(change.retrace) | set(need_positions))
    groups: dict[tuple[int, str, int | None], list[tuple[str, str]]] = {}
    for key in todo:
        v = _final_values(key, plan, state)
        epsg, ref = int(v["collar_epsg"]), v["azimuth_reference"]
        local = epsg if ref == "grid" and _is_projected(epsg) else None
        groups.setdefault((epsg, ref, local), []).append(key)

    for (epsg, ref, local), keys in groups.items():
        md: list[float] = []
        dip: list[float] = []
        azi: list[float] = []
        offsets = [0]
        vals = [_final_values(k, plan, state) for k in keys]
        for key, v in zip(keys, vals, strict=False):
            stations = _final_surveys(key, plan, state)
            if not stations or stations[0][0] > 0:
                stations = [(0.0, v["dip"], v["azimuth"]), *stations]
            for d, a, b in stations:
                md.append(d)
                dip.append(a)
                azi.append(b)
            offsets.append(len(md))
        cx = np.array([v["collar_x"] for v in vals], dtype=float)
        cy = np.array([v["collar_y"] for v in vals], dtype=float)
        cz = np.array([v["elevation_m"] for v in vals], dtype=float)
        decl = np.array([v["magnetic_declination_deg"] if v["magnetic_declination_deg"] is not None else 0.0
                         for v in vals], dtype=float)
        try:
            batch = desurvey_batch(
                cx, cy, cz, md, dip, azi, np.array(offsets),
                collar_epsg=epsg, length=np.array([v["length_m"] for v in vals], dtype=float),
                hole_ids=[str(i) for i in range(len(keys))], azimuth_reference=ref,  # type: ignore[arg-type]
                declination=decl, local_epsg=local)
        except ValueError as exc:
            geo.findings.extend(_desurvey_failures(keys, plan, str(exc)))
            continue
        if epsg == WGS84:
            clon, clat = cx, cy
        else:
            clon, clat = (np.asarray(a) for a in transformer(epsg, WGS84).transform(cx, cy))
        lon, lat, z = batch.lonlat()
        first = batch.offsets[:-1]
        lon[first], lat[first], z[first] = clon, clat, cz  # the trace starts exactly at the collar
        counts = np.diff(batch.offsets)
        lines = shapely.linestrings(np.column_stack([lon, lat, z]), indices=np.repeat(np.arange(len(keys)), counts))
        points = shapely.points(np.column_stack([clon, clat, cz]))
        lines_hex = shapely.to_wkb(shapely.set_srid(lines, WGS84), hex=True, include_srid=True, output_dimension=3)
        points_hex = shapely.to_wkb(shapely.set_srid(points, WGS84), hex=True, include_srid=True, output_dimension=3)
        for h, key in enumerate(keys):
            if key in change.retrace:
                geo.holes[key] = (points_hex[h], lines_hex[h], int(batch.epsg[h]))
            names = need_positions.get(key)
            if not names:
                continue
            final = _final_samples(key, plan, state)
            mids = np.array([(final[n]["from_m"] + final[n]["to_m"]) / 2.0 for n in names])
            pos = batch[h].position_at(mids)
            pts = shapely.points(np.column_stack([pos.lon, pos.lat, pos.z]))
            hexes = shapely.to_wkb(shapely.set_srid(pts, WGS84), hex=True, include_srid=True, output_dimension=3)
            geo.samples[key] = dict(zip(names, hexes, strict=False))
    report.traces = len(change.retrace)
    report.positions = sum(len(v) for v in geo.samples.values())
    return geo


def _desurvey_failures(keys, plan: Plan, message: str) -> list[Finding]:
    """Findings for a failed batch desurvey: the message names the hole by its index."""
    import re

    match = re.match(r"hole '(\d+)': (.*)", message)
    if match:
        key = keys[int(match.group(1))]
        hole = plan.holes[key]
        return [error(hole.source or "<database>", hole.line, None, f"cannot desurvey hole {key[1]}: "
                      f"{match.group(2)}")]
    return [error("<desurvey>", None, None, message)]


# --------------------------------------------------------------------------- writes
_HOLE_WRITE = ("deposit_id", "name") + HOLE_FIELDS + ("local_epsg", "collar", "trace")
_HOLE_TYPES = {"deposit_id": "bigint", "name": "text", "purpose": "text", "collar_x": "float8",
               "collar_y": "float8", "collar_epsg": "integer", "elevation_m": "float8",
               "elevation_reference": "text", "length_m": "float8", "dip": "float8", "azimuth": "float8",
               "azimuth_reference": "text", "magnetic_declination_deg": "float8", "drilling_method_uri": "text",
               "start_date": "date", "end_date": "date", "operator": "text", "core_custodian": "text",
               "local_epsg": "integer", "collar": "geometry", "trace": "geometry"}
_PLUG_WRITE = ("drillcore_id", "name") + SAMPLE_FIELDS + ("position",)
_PLUG_TYPES = {"drillcore_id": "bigint", "name": "text", "from_m": "float8", "to_m": "float8",
               "sample_type_uri": "text", "lithology_uri": "text", "preparation": "text",
               "description": "text", "position": "geometry"}


def _copy(cur, table: str, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def write(cur, plan: Plan, state: State, change: _Change, geo: _Geometry) -> None:
    """All writes, in an order the database's depth rules accept at every step."""
    deposit_ids = {name: dep.id for name, dep in state.deposits.items()}
    for name in sorted(change.deposits):
        dep = plan.deposits[name]
        cur.execute(
            f"INSERT INTO deposit (name, {', '.join(DEPOSIT_FIELDS)}, footprint) "
            f"VALUES (%s, {', '.join(['%s'] * len(DEPOSIT_FIELDS))}, ST_GeomFromWKB(%s, 4326)) "
            f"ON CONFLICT (name) DO UPDATE SET {', '.join(f'{f} = EXCLUDED.{f}' for f in DEPOSIT_FIELDS)}, "
            "footprint = EXCLUDED.footprint, updated_at = now() RETURNING id",
            [name, *(dep.values[f] for f in DEPOSIT_FIELDS), dep.footprint.wkb])
        deposit_ids[name] = cur.fetchone()[0]
        cur.execute("DELETE FROM deposit_commodity WHERE deposit_id = %s", [deposit_ids[name]])
        if dep.commodities:
            cur.executemany("INSERT INTO deposit_commodity (deposit_id, commodity_uri, rank) VALUES (%s, %s, %s)",
                            [(deposit_ids[name], uri, rank) for rank, uri in enumerate(dep.commodities, 1)])

    hole_ids = {key: hole.id for key, hole in state.holes.items()}
    if change.holes:
        cur.execute("CREATE TEMP TABLE _reg_hole ("
                    + ", ".join(f"{c} {_HOLE_TYPES[c]}" for c in _HOLE_WRITE) + ") ON COMMIT DROP")
        rows = []
        keys: dict[tuple[int, str], tuple[str, str]] = {}
        for key in sorted(change.holes):
            v = _final_values(key, plan, state)
            # holes whose geometry did not change keep their collar, trace and local CRS
            collar, trace, local = geo.holes.get(key, (None, None, None))
            dep_id = deposit_ids[key[0]] if key[0] in deposit_ids else state.holes[key].values["deposit_id"]
            keys[(dep_id, key[1])] = key
            rows.append([dep_id, key[1], *(v[f] for f in HOLE_FIELDS), local, collar, trace])
        _copy(cur, "_reg_hole", _HOLE_WRITE, rows)
        cols = list(_HOLE_WRITE)
        sets = ", ".join(f"{c} = GREATEST(EXCLUDED.{c}, drillcore.{c})" if c == "length_m" else f"{c} = EXCLUDED.{c}"
                         for c in cols if c not in ("deposit_id", "name"))
        cur.execute(f"INSERT INTO drillcore ({', '.join(cols)}) SELECT {', '.join(cols)} FROM _reg_hole "
                    f"WHERE trace IS NOT NULL ON CONFLICT (deposit_id, name) DO UPDATE SET {sets}, updated_at = now() "
                    "RETURNING id, deposit_id, name")
        for hid, dep_id, name in cur.fetchall():
            hole_ids[keys[(dep_id, name)]] = hid
        attrs = [c for c in HOLE_FIELDS]
        sets = ", ".join(f"{c} = GREATEST(r.{c}, d.{c})" if c == "length_m" else f"{c} = r.{c}" for c in attrs)
        cur.execute(f"UPDATE drillcore d SET {sets}, updated_at = now() FROM _reg_hole r "
                    "WHERE r.trace IS NULL AND d.deposit_id = r.deposit_id AND d.name = r.name")

    if change.surveys:
        replaced = [hole_ids[k] for k in change.surveys if k in state.holes]
        if replaced:
            cur.execute("DELETE FROM survey_station WHERE drillcore_id = ANY(%s)", [replaced])
        _copy(cur, "survey_station", ("drillcore_id", "depth_m", "dip", "azimuth"),
              ((hole_ids[k], d, a, b) for k in sorted(change.surveys) for d, a, b in plan.holes[k].surveys or ()))

    if geo.samples:
        new_rows: list[list[Any]] = []
        old_rows: list[list[Any]] = []
        for key in sorted(geo.samples):
            samples = _final_samples(key, plan, state)
            registered = state.holes[key].samples if key in state.holes else {}
            for name, position in geo.samples[key].items():
                v = samples[name]
                (old_rows if name in registered else new_rows).append(
                    [hole_ids[key], name, *(v[f] for f in SAMPLE_FIELDS), position])
        if new_rows:  # straight into the table: COPY is the fastest insert there is
            _copy(cur, "plug", _PLUG_WRITE, new_rows)
        if old_rows:  # changed samples, or new positions on a new trace: update in place
            cur.execute("CREATE TEMP TABLE _reg_plug ("
                        + ", ".join(f"{c} {_PLUG_TYPES[c]}" for c in _PLUG_WRITE) + ") ON COMMIT DROP")
            _copy(cur, "_reg_plug", _PLUG_WRITE, old_rows)
            sets = ", ".join(f"{c} = r.{c}" for c in _PLUG_WRITE if c not in ("drillcore_id", "name"))
            cur.execute(f"UPDATE plug p SET {sets}, updated_at = now() FROM _reg_plug r "
                        "WHERE p.drillcore_id = r.drillcore_id AND p.name = r.name")

    if change.holes:  # holes that got shorter: now that their plugs and surveys are in place
        cur.execute("UPDATE drillcore d SET length_m = r.length_m, updated_at = now() FROM _reg_hole r "
                    "WHERE d.deposit_id = r.deposit_id AND d.name = r.name AND d.length_m <> r.length_m")


# --------------------------------------------------------------------------- the service
class _Rollback(Exception):
    pass


def register(
    inputs: Iterable[Input],
    *,
    url: str | None = None,
    dry_run: bool = False,
    deposit: str | None = None,
    convention: Literal["dip", "inclination"] = "dip",
    dogleg_limit: float = DEFAULT_DOGLEG_LIMIT,
    epsg: int | None = None,
    sample_type: str | None = None,
    source: str = "<input>",
    create: bool = False,
) -> RegistrationReport:
    """Register deposits, collars, surveys and samples in one transaction.

    ``inputs``: paths (kind told by format and columns), ``(kind, path)`` pairs, parsed
    :class:`~mis.catalogue.register.tables.Table` objects or mappings
    ``{"collars": [row, ...], ...}`` (row dicts keyed by column names or aliases;
    ``source`` labels them in messages). ``deposit``: deposit of rows without a DEPOSIT
    column; ``convention``: meaning of DIP columns ("inclination" = from vertical);
    ``dogleg_limit``: deg/30 m above which a survey interval is reported; ``epsg``: CRS
    of X/Y without an EPSG column; ``sample_type``: sample type of rows without one.
    ``create``: the deposits, holes and samples of the input must be new; one that is
    registered already is an error and sets ``report.conflict`` (an API POST creates,
    it never updates).

    Registrations that name the same deposits or holes are serialised (transaction-level
    advisory locks, taken before the database state is read): the second plans on what
    the first wrote, so that neither silently undoes the other.

    Nothing is written when any error is found or with ``dry_run``; the report lists
    every finding and what changed (or would change). A database that cannot be reached
    or is lost mid-way raises :class:`~mis.catalogue.errors.DatabaseUnavailable` (nothing
    written).
    """
    from sqlalchemy.exc import IntegrityError

    from mis.catalogue.errors import explain
    from mis.catalogue.session import psycopg_cursor, transaction
    from mis.vocab.lookup import TermIndex

    started = time.perf_counter()
    options = Options(deposit=deposit, convention=convention, dogleg_limit=dogleg_limit, epsg=epsg,
                      sample_type=sample_type)
    if convention not in ("dip", "inclination"):
        raise ValueError(f"convention must be 'dip' or 'inclination'; got {convention!r}")
    tables = read_inputs(inputs, source)
    report = RegistrationReport(findings=[], dry_run=dry_run, sources=[t.source for t in tables])
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        report.timings[name] = now - clock[0]
        clock[0] = now

    report.timings["read"] = clock[0] - started
    try:
        with transaction(url) as session:
            cur = psycopg_cursor(session)
            deposit_names, hole_names = _names(tables, options)
            lock_names(cur, deposit_names, hole_names)
            state = load_state(cur, deposit_names, hole_names,
                               {r.values["name"] for t in tables if t.kind == "deposits" for r in t.rows
                                if r.values.get("name")})
            terms = TermIndex.from_session(session, sorted({s for s, _w in SCHEMES.values()}))
            lap("state")
            plan, findings = validate(tables, state, terms, options)
            report.findings = findings
            if not report.ok:
                raise _Rollback
            change = diff(plan, state, report)
            if create:
                existing = _existing(plan, state)
                if existing:
                    report.conflict = True
                    report.findings += [error(source, None, None, f"{what} is registered already: "
                                              "creating does not change it") for what in existing]
                    raise _Rollback
            lap("validate")
            geo = compute_geometry(plan, state, change, report)
            lap("geometry")
            if geo.findings:
                report.findings = sort_findings(findings + geo.findings, report.sources)
                raise _Rollback
            if dry_run:
                raise _Rollback
            write(cur, plan, state, change, geo)
            report.written = True
        lap("write")  # includes the commit
    except _Rollback:
        pass
    except IntegrityError as exc:  # a database rule the checks above did not foresee
        report.findings.append(error("<database>", None, None, str(explain(exc))))
        report.written = False
    except Exception as exc:
        import psycopg

        from mis.catalogue.errors import DatabaseUnavailable, is_connection_error

        if is_connection_error(exc):
            raise DatabaseUnavailable() from None
        if not isinstance(exc, psycopg.errors.IntegrityError):
            raise
        report.findings.append(error("<database>", None, None, str(explain(IntegrityError(None, None, exc)))))
        report.written = False
    report.seconds = time.perf_counter() - started
    return report
