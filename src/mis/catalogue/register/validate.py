"""Every registration rule, applied to all the input at once: findings, and a plan.

:func:`validate` takes the typed tables (:mod:`.tables`), what the database already holds
about the deposits and holes they name (:class:`State`, loaded by the service) and the
vocabulary (:class:`~mis.vocab.lookup.TermIndex`); it returns a :class:`Plan` (the
records as they will be, with vocabulary terms resolved to URIs) and the list of
findings. Errors make the service write nothing; warnings are reported and the data is
written. Each finding reads ``file:line: column: rule (value ...; detail)``; the full
list, with what each means, is in ``docs/data-manager.md``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mis.catalogue.register.tables import Finding, Row, Table, error, format_value, sort_findings, warning
from mis.vocab.lookup import AmbiguousTermError, TermIndex, UnknownTermError

__all__ = ["DEFAULT_DOGLEG_LIMIT", "DbHole", "DepositPlan", "HolePlan", "Options", "Plan", "State",
           "SCHEMES", "validate"]

#: Dogleg severity (degrees per 30 m) above which a survey interval is reported as unrealistic.
DEFAULT_DOGLEG_LIMIT = 10.0
#: Vocabulary scheme of each classified field, and how a message names it.
SCHEMES = {
    "lithology": ("lithology", "lithology"),
    "sample_type": ("sample-type", "sample type"),
    "drilling_method": ("drilling-method", "drilling method"),
    "commodities": ("commodity", "commodity"),
    "occurrence_type": ("occurrence-type", "occurrence type"),
    "deposit_model": ("deposit-model", "deposit model"),
}
_AZIMUTH_REFERENCES = {
    "true": "true", "t": "true", "true north": "true", "tn": "true", "geographic": "true",
    "grid": "grid", "g": "grid", "grid north": "grid", "gn": "grid",
    "magnetic": "magnetic", "m": "magnetic", "mag": "magnetic", "magnetic north": "magnetic",
    "mn": "magnetic",
}
DEFAULT_ELEVATION_REFERENCE = "ground surface"
#: How far (m) a collar may lie outside its deposit's footprint polygon: within it a
#: warning, beyond it an error (a typo, lon/lat swapped, the wrong CRS or deposit). A
#: point footprint only marks where the deposit is: its collars may be further from it.
FOOTPRINT_TOLERANCE_M = 1_000.0
POINT_FOOTPRINT_TOLERANCE_M = 10_000.0
#: Longest hole (m): the deepest borehole drilled is 12.3 km.
MAX_HOLE_LENGTH_M = 15_000.0
#: Collar elevations (m) on Earth: the deepest ocean floor to the highest summit, with margin.
ELEVATION_RANGE_M = (-11_500.0, 9_000.0)
#: Latitudes a footprint or collar may have: the UTM zones holes are desurveyed in.
LATITUDE_RANGE = (-80.0, 84.0)


# --------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class Options:
    """How to read what the tables leave open."""

    #: Deposit of collars (and of surveys/samples) whose rows name none.
    deposit: str | None = None
    #: Meaning of DIP columns: "dip" (mining, -90 down) or "inclination" (from vertical,
    #: 0 down). A column named INCLINATION is always an inclination.
    convention: Literal["dip", "inclination"] = "dip"
    dogleg_limit: float = DEFAULT_DOGLEG_LIMIT
    #: CRS of X/Y collar coordinates in files without an EPSG column.
    epsg: int | None = None
    #: Sample type of sample rows that give none (a vocabulary term).
    sample_type: str | None = None


@dataclass
class DbDeposit:
    id: int
    name: str
    values: dict[str, Any]
    footprint: Any  # shapely geometry
    commodities: list[str]
    #: Its registered holes' collars: (hole name, lon, lat).
    collars: list[tuple[str, float, float]] = field(default_factory=list)


@dataclass
class DbHole:
    id: int
    deposit: str
    name: str
    values: dict[str, Any]
    surveys: list[tuple[float, float, float]]
    #: sample name -> values (from_m, to_m, sample_type_uri, lithology_uri, preparation, description)
    samples: dict[str, dict[str, Any]]


@dataclass
class State:
    """What the database holds about the deposits and holes the input names."""

    deposits: dict[str, DbDeposit] = field(default_factory=dict)
    holes: dict[tuple[str, str], DbHole] = field(default_factory=dict)

    def holes_named(self, name: str) -> list[DbHole]:
        if self._by_name is None or self._by_name_size != len(self.holes):
            self._by_name = defaultdict(list)
            for hole in self.holes.values():
                self._by_name[hole.name].append(hole)
            self._by_name_size = len(self.holes)
        return self._by_name.get(name, [])

    _by_name: dict[str, list[DbHole]] | None = field(default=None, repr=False)
    _by_name_size: int = field(default=0, repr=False)


# --------------------------------------------------------------------------- the plan
@dataclass
class DepositPlan:
    name: str
    values: dict[str, Any]
    footprint: Any
    commodities: list[str]
    source: str
    line: int | None


@dataclass
class HolePlan:
    """A hole as it will be: ``values`` is the new collar record (None: the collar is not
    in the input, the database's stays); ``surveys`` the complete new survey set (None:
    unchanged); ``samples`` the new or changed sample records by name."""

    deposit: str
    name: str
    values: dict[str, Any] | None = None
    surveys: list[tuple[float, float, float]] | None = None
    samples: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str | None = None
    line: int | None = None
    lon: float | None = None
    lat: float | None = None


@dataclass
class Plan:
    deposits: dict[str, DepositPlan] = field(default_factory=dict)
    holes: dict[tuple[str, str], HolePlan] = field(default_factory=dict)


HOLE_FIELDS = ("purpose", "collar_x", "collar_y", "collar_epsg", "elevation_m", "elevation_reference",
               "length_m", "dip", "azimuth", "azimuth_reference", "magnetic_declination_deg",
               "drilling_method_uri", "start_date", "end_date", "operator", "core_custodian")
#: Collar fields the trace depends on.
GEOMETRY_FIELDS = ("collar_x", "collar_y", "collar_epsg", "elevation_m", "length_m", "dip", "azimuth",
                   "azimuth_reference", "magnetic_declination_deg")
SAMPLE_FIELDS = ("from_m", "to_m", "sample_type_uri", "lithology_uri", "preparation", "description")
DEPOSIT_FIELDS = ("occurrence_type_uri", "deposit_model_uri", "deposit_model_note", "country",
                  "description", "source")


def _m(value: float) -> str:
    return f"{format_value(float(value))} m"


# --------------------------------------------------------------------------- vocabulary
class _Terms:
    """Resolves field values through the vocabulary, once per distinct (scheme, text)."""

    def __init__(self, index: TermIndex) -> None:
        self.index = index
        self.cache: dict[tuple[str, str], tuple[str | None, str | None, str | None]] = {}

    def resolve(self, fieldname: str, text: str) -> tuple[str | None, str | None, str | None]:
        """(uri, rule, detail): uri when known, else the rule broken and a detail."""
        scheme, words = SCHEMES[fieldname]
        key = (scheme, text)
        if key not in self.cache:
            try:
                self.cache[key] = (self.index.resolve(text, scheme).uri, None, None)
            except UnknownTermError as exc:
                hint = (f"did you mean {', '.join(repr(s) for s in exc.suggestions)}?"
                        if exc.suggestions else None)
                self.cache[key] = (None, f"unknown {words} term", hint)
            except AmbiguousTermError as exc:
                self.cache[key] = (None, f"ambiguous {words} term",
                                   f"it names {', '.join(sorted(exc.uris))}: use the URI")
        return self.cache[key]


# --------------------------------------------------------------------------- validation
class _Validator:
    def __init__(self, tables: list[Table], state: State, terms: TermIndex, options: Options) -> None:
        self.tables = tables
        self.state = state
        self.terms = _Terms(terms)
        self.options = options
        self.findings: list[Finding] = []
        self.plan = Plan()
        self.hole_rows: dict[tuple[str, str], tuple[Table, Row]] = {}
        self.batch_by_name: dict[str, set[str]] = defaultdict(set)
        self.prepared: dict[str, Any] = {}
        #: deposit name -> its row in the input
        self.deposit_rows: dict[str, tuple[Table, Row]] = {}
        names = {r.values["name"] for t in tables if t.kind == "deposits" for r in t.rows if r.values.get("name")}
        #: The deposit of rows that name none, when the input holds exactly one deposit.
        self.only_deposit = names.pop() if len(names) == 1 else None

    # -- helpers
    def err(self, table: Table, row: Row | None, fieldname: str | None, rule: str, *args: Any, **kw: Any) -> None:
        self.findings.append(error(table.source, None if row is None else row.line_of(fieldname or ""),
                                   self._col(table, row, fieldname), rule, *args, **kw))

    def warn(self, table: Table, row: Row | None, fieldname: str | None, rule: str, *args: Any, **kw: Any) -> None:
        self.findings.append(warning(table.source, None if row is None else row.line_of(fieldname or ""),
                                     self._col(table, row, fieldname), rule, *args, **kw))

    @staticmethod
    def _col(table: Table, row: Row | None, fieldname: str | None) -> str | None:
        if fieldname is None:
            return None
        if "/" in fieldname:
            return "/".join(table.column(f) for f in fieldname.split("/"))
        default = table.column(fieldname)
        return row.name_of(fieldname, default) if row is not None else default

    def missing(self, table: Table, row: Row, fieldname: str, rule: str) -> None:
        """Report a missing value, unless its whole column is missing (reported once, on the
        header) or the value was there but did not convert (reported already)."""
        if fieldname in table.columns and fieldname not in row.invalid:
            self.err(table, row, fieldname, rule)

    def term(self, table: Table, row: Row, fieldname: str, text: str) -> str | None:
        uri, rule, detail = self.terms.resolve(fieldname, text)
        if uri is None:
            self.err(table, row, fieldname, rule or f"unknown {fieldname} term", text, detail=detail)
        return uri

    def of(self, kind: str) -> Iterable[Table]:
        return (t for t in self.tables if t.kind == kind)

    # -- deposits
    def deposits(self) -> None:
        first: dict[str, tuple[Table, Row]] = {}
        for table in self.of("deposits"):
            for row in table.rows:
                self.deposit(table, row, first)

    def deposit(self, table: Table, row: Row, first: dict[str, tuple[Table, Row]]) -> None:
        v = row.values
        name = v.get("name")
        if name is None:
            if "name" not in row.invalid:
                self.findings.append(error(table.source, row.line, "name", "required field missing"))
            return
        if name in first:
            t0, r0 = first[name]
            self.err(table, row, "name", "duplicate deposit name", name, detail=f"first at {t0.source}:{r0.line}")
            return
        first[name] = self.deposit_rows[name] = (table, row)
        values: dict[str, Any] = {"country": v.get("country"), "description": v.get("description"),
                                  "source": v.get("source"), "occurrence_type_uri": None,
                                  "deposit_model_uri": None, "deposit_model_note": None}
        if "occurrence_type" in v:
            values["occurrence_type_uri"] = self.term(table, row, "occurrence_type", v["occurrence_type"])
        if "deposit_model" in v:  # a vocabulary term, else kept as free text
            uri, _rule, _detail = self.terms.resolve("deposit_model", v["deposit_model"])
            values["deposit_model_uri" if uri else "deposit_model_note"] = uri or v["deposit_model"]
        commodities: list[str] = []
        for text in v.get("commodities", []):
            uri = self.term(table, row, "commodities", text)
            if uri and uri not in commodities:
                commodities.append(uri)
        footprint = self.footprint(table, row)
        self.plan.deposits[name] = DepositPlan(name, values, footprint, commodities, table.source, row.line)

    def footprint(self, table: Table, row: Row) -> Any:
        import shapely
        from shapely.geometry import Point, shape

        v = row.values
        raw = v.get("footprint")
        crs = v.get("_crs")
        if crs is not None and not _is_wgs84_geojson_crs(crs):
            self.err(table, row, "footprint", "footprint must be in EPSG:4326 (lon, lat)",
                     detail=f"crs {crs!r}")
            return None
        if raw is None:
            if "lon" in v and "lat" in v:
                geom = Point(v["lon"], v["lat"])
            else:
                if not ({"footprint", "lon", "lat"} & row.invalid):
                    self.err(table, row, "footprint", "footprint missing: give a GeoJSON geometry, "
                             "WKT, or lon and lat")
                return None
        else:
            try:
                geom = shape(raw) if isinstance(raw, dict) else shapely.from_wkt(str(raw))
            except Exception as exc:  # noqa: BLE001 - shapely raises many kinds
                self.err(table, row, "footprint", "not a geometry (GeoJSON or WKT)",
                         detail=str(exc).splitlines()[0][:120])
                return None
        if geom is None or geom.is_empty:
            self.err(table, row, "footprint", "footprint is empty")
            return None
        geom = shapely.force_2d(geom)
        if geom.geom_type not in ("Polygon", "MultiPolygon", "Point"):
            self.err(table, row, "footprint", "footprint must be a Polygon, MultiPolygon or Point",
                     geom.geom_type)
            return None
        minx, miny, maxx, maxy = geom.bounds
        if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
            self.err(table, row, "footprint", "footprint is not in lon/lat (EPSG:4326)",
                     detail=f"bounds {format_value((minx, miny, maxx, maxy))}")
            return None
        if miny < LATITUDE_RANGE[0] or maxy > LATITUDE_RANGE[1]:
            self.err(table, row, "footprint", "footprint beyond the UTM range (80S..84N): lon/lat swapped?",
                     detail=f"bounds {format_value((minx, miny, maxx, maxy))}")
            return None
        unclosed = _unclosed_ring(raw) if isinstance(raw, dict) else None
        if unclosed is not None:
            self.err(table, row, "footprint", "polygon ring not closed: its last point must repeat the first",
                     detail=f"ring {unclosed}")
            return None
        if not geom.is_valid:
            self.err(table, row, "footprint", "footprint is not a valid geometry",
                     detail=shapely.is_valid_reason(geom))
            return None
        return geom

    def deposit_exists(self, name: str) -> bool:
        return name in self.plan.deposits or name in self.state.deposits

    def footprint_of(self, name: str) -> Any:
        if name in self.plan.deposits:
            return self.plan.deposits[name].footprint
        dep = self.state.deposits.get(name)
        return dep.footprint if dep else None

    # -- collars
    def collars(self) -> None:
        pending: list[tuple[Table, Row, HolePlan, int, float, float]] = []
        for table in self.of("collars"):
            for row in table.rows:
                item = self.collar(table, row)
                if item is not None:
                    pending.append(item)
        self.place_collars(pending)

    def deposit_of(self, table: Table, row: Row) -> str | None:
        """The row's DEPOSIT, else ``--deposit``, else the one deposit of the input files."""
        return row.get("deposit") or self.options.deposit or self.only_deposit


    def collar(self, table: Table, row: Row):
        v = row.values
        hole = v.get("hole_id")
        if hole is None:
            self.missing(table, row, "hole_id", "hole id missing")
            return None
        deposit = self.deposit_of(table, row)
        ok = True
        if deposit is None:
            self.err(table, row, "deposit", "no deposit: add a DEPOSIT column or use --deposit", hole)
            ok = False
        elif not self.deposit_exists(deposit):
            self.err(table, row, "deposit", "unknown deposit", deposit,
                     detail="not in the deposit files nor the database")
            ok = False
        key = (deposit or "", hole)
        if deposit is not None and key in self.hole_rows:
            t0, r0 = self.hole_rows[key]
            self.err(table, row, "hole_id", "duplicate hole id", hole, detail=f"first at {t0.source}:{r0.line}")
            return None
        if deposit is not None:
            self.hole_rows[key] = (table, row)
            self.batch_by_name[hole].add(deposit)
        values: dict[str, Any] = {f: None for f in HOLE_FIELDS}
        # coordinates and CRS
        use_xy = ("x" in table.columns and "y" in table.columns) and (
            "lon" not in table.columns or "x" in v or "y" in v)
        fx, fy = ("x", "y") if use_xy else ("lon", "lat")
        x, y = v.get(fx), v.get(fy)
        for f, val in ((fx, x), (fy, y)):
            if val is None and f not in row.invalid and f in table.columns:
                self.err(table, row, f, "collar coordinate missing")
                ok = False
        if x is None or y is None:
            ok = False
        epsg = v.get("epsg")
        if epsg is None:
            epsg = 4326 if not use_xy else self.options.epsg
        if epsg is None and "epsg" not in row.invalid:
            self.err(table, row, "epsg", f"CRS missing: {table.column('x')}/{table.column('y')} need an "
                     "EPSG column or --epsg")
            ok = False
        if epsg is None:
            ok = False
        elif not use_xy and not _is_geographic(epsg):
            self.err(table, row, "epsg", f"{table.column('lon')}/{table.column('lat')} need a geographic CRS "
                     "(e.g. EPSG:4326)", epsg)
            ok = False
        elif epsg == 4326 and x is not None and y is not None and not (-180 <= x <= 180 and -90 <= y <= 90):
            self.err(table, row, f"{fx}/{fy}", "not a longitude/latitude in EPSG:4326", (x, y))
            ok = False
        values.update(collar_x=x, collar_y=y, collar_epsg=epsg)
        # elevation, length
        z = v.get("z")
        if z is None:
            self.missing(table, row, "z", "collar elevation missing")
            ok = False
        length = v.get("length")
        if length is None:
            self.missing(table, row, "length", "hole length missing")
            ok = False
        elif length <= 0:
            self.err(table, row, "length", "hole length must be > 0", length)
            ok = False
        elif length > MAX_HOLE_LENGTH_M:
            self.err(table, row, "length", f"hole length beyond {MAX_HOLE_LENGTH_M:,.0f} m", length)
            ok = False
        if z is not None and not ELEVATION_RANGE_M[0] <= z <= ELEVATION_RANGE_M[1]:
            self.err(table, row, "z", f"collar elevation outside {ELEVATION_RANGE_M[0]:,.0f}.."
                     f"{ELEVATION_RANGE_M[1]:,.0f} m", z)
            ok = False
        values.update(elevation_m=z, length_m=length)
        # A column the file does not have keeps what a registered hole has (an empty cell
        # in a column it has clears the value).
        db = self.state.holes.get(key) if deposit is not None else None
        # read only where kept() holds, that is where the database has the hole
        db_values: dict[str, Any] = db.values if db is not None else {}

        def kept(*fields: str) -> bool:
            return db is not None and not any(f in table.columns for f in fields)

        # orientation
        dip = db_values["dip"] if kept("dip", "inclination") else self.angle_dip(table, row)
        azimuth = db_values["azimuth"] if kept("azimuth") else self.azimuth(table, row, "azimuth")
        if dip is False or azimuth is False:
            ok = False
            dip = azimuth = None
        if dip is not None and azimuth is None and abs(dip) != 90:
            self.err(table, row, "azimuth", "collar azimuth missing: an inclined hole needs one",
                     detail=f"dip {format_value(dip)}")
            ok = False
        elif dip is not None and azimuth is None:
            azimuth = 0.0
        values.update(dip=dip, azimuth=azimuth)
        ref_text = v.get("azimuth_reference")
        reference = db_values["azimuth_reference"] if kept("azimuth_reference") else "true"
        if ref_text is not None:
            reference = _AZIMUTH_REFERENCES.get(ref_text.strip().casefold())
            if reference is None:
                self.err(table, row, "azimuth_reference", "azimuth reference must be true, grid or magnetic",
                         ref_text)
                ok = False
        declination = db_values["magnetic_declination_deg"] if kept("declination") else v.get("declination")
        if declination is not None and not -180 <= declination <= 180:
            self.err(table, row, "declination", "declination out of range -180..180", declination)
            ok = False
        elif reference == "magnetic" and declination is None and "declination" not in row.invalid:
            self.err(table, row, "declination", "magnetic azimuths need a declination",
                     detail=f"{table.column('azimuth_reference')} {ref_text!r}")
            ok = False
        values.update(azimuth_reference=reference or "true", magnetic_declination_deg=declination)
        if "drilling_method" in v:
            uri = self.term(table, row, "drilling_method", v["drilling_method"])
            ok = ok and uri is not None
            values["drilling_method_uri"] = uri
        elif kept("drilling_method"):
            values["drilling_method_uri"] = db_values["drilling_method_uri"]
        start = db_values["start_date"] if kept("start_date") else v.get("start_date")
        end = db_values["end_date"] if kept("end_date") else v.get("end_date")
        if start and end and end < start:
            self.err(table, row, "end_date", "end date before start date", end, detail=f"start {start.isoformat()}")
            ok = False
        values.update(start_date=start, end_date=end)
        for field_, column in (("operator", "operator"), ("core_custodian", "custodian"), ("purpose", "purpose"),
                               ("elevation_reference", "elevation_reference")):
            values[field_] = db_values[field_] if kept(column) else v.get(column)
        values["elevation_reference"] = values["elevation_reference"] or DEFAULT_ELEVATION_REFERENCE
        if not ok or deposit is None:
            return None
        plan = HolePlan(deposit, hole, values, source=table.source, line=row.line)
        self.plan.holes[key] = plan
        return table, row, plan, epsg, x, y

    def angle_dip(self, table: Table, row: Row) -> float | None | Literal[False]:
        """Mining dip from a DIP or INCLINATION value; False when out of range (reported)."""
        v = row.values
        if "inclination" in v:
            return _inclination(self, table, row, "inclination", v["inclination"])
        if "dip" in v:
            if self.options.convention == "inclination":
                return _inclination(self, table, row, "dip", v["dip"])
            if not -90 <= v["dip"] <= 90:
                self.err(table, row, "dip", "dip out of range -90..90", v["dip"])
                return False
            return v["dip"]
        return None

    def azimuth(self, table: Table, row: Row, f: str) -> float | None | Literal[False]:
        a = row.values.get(f)
        if a is None:
            return None
        if not 0 <= a <= 360:
            self.err(table, row, f, "azimuth out of range 0..360", a)
            return False
        return 0.0 if a == 360 else a

    def place_collars(self, pending) -> None:
        """Lon/lat of the collars (grouped per CRS) and the footprint check."""
        from mis.drillholes.crs import WGS84, transformer

        groups: dict[int, list] = defaultdict(list)
        for item in pending:
            groups[item[3]].append(item)
        for epsg, items in groups.items():
            xs = np.array([i[4] for i in items], dtype=float)
            ys = np.array([i[5] for i in items], dtype=float)
            if epsg == WGS84:
                lon, lat = xs, ys
            else:
                lon, lat = (np.asarray(a) for a in transformer(epsg, WGS84).transform(xs, ys))
            for (table, row, plan, _e, x, y), lo, la in zip(items, lon, lat, strict=True):
                if not (math.isfinite(lo) and math.isfinite(la)) or abs(la) > 90:
                    f = "x/y" if "x" in row.values else "lon/lat"
                    self.err(table, row, f, f"coordinates outside the area of EPSG:{epsg}", (x, y))
                    del self.plan.holes[(plan.deposit, plan.name)]
                    continue
                if not -80 <= la <= 84:
                    f = "x/y" if "x" in row.values else "lon/lat"
                    self.err(table, row, f, "collar beyond the UTM range (80S..84N): not supported yet",
                             (x, y))
                    del self.plan.holes[(plan.deposit, plan.name)]
                    continue
                plan.lon, plan.lat = float(lo), float(la)
                self.check_footprint(table, row, plan)

    def check_footprint(self, table: Table, row: Row, plan: HolePlan) -> None:
        """A collar inside its deposit's footprint; outside it within the tolerance a
        warning, beyond it an error (with a hint when swapping lon and lat would fit)."""
        lon, lat, values = plan.lon, plan.lat, plan.values
        if lon is None or lat is None or values is None:
            raise RuntimeError(f"hole {plan.name!r}: the footprint check needs the collar placed (lon/lat) first")
        footprint = self.footprint_of(plan.deposit)
        if footprint is None:
            return
        from shapely.geometry import Point
        from shapely.prepared import prep

        prepared = self.prepared.get(plan.deposit)
        if prepared is None:
            prepared = self.prepared[plan.deposit] = prep(footprint)
        if footprint.geom_type != "Point" and prepared.covers(Point(lon, lat)):
            return
        tolerance = _tolerance(footprint)
        distance = _distance_m(footprint, lon, lat)
        f = "x/y" if "x" in row.values else "lon/lat"
        x, y = values["collar_x"], values["collar_y"]
        if distance <= tolerance:
            if footprint.geom_type != "Point":
                self.warn(table, row, f, f"collar outside the footprint of deposit {plan.deposit!r}", (x, y),
                          detail=f"{distance:.0f} m outside; within the {tolerance:.0f} m tolerance")
            return
        swapped = abs(lon) <= 90 and _distance_m(footprint, lat, lon) <= tolerance
        self.err(table, row, f, f"collar {_km(distance)} from the footprint of deposit {plan.deposit!r}"
                 + ("; lon/lat swapped?" if swapped else ""), (x, y),
                 detail=f"at most {tolerance:.0f} m outside it is accepted")

    def registered_collars(self) -> None:
        """A new footprint of a registered deposit must still hold its registered collars
        (within the tolerance): a footprint with lon/lat swapped would leave them all out."""
        for name, dep in self.plan.deposits.items():
            db = self.state.deposits.get(name)
            if db is None or dep.footprint is None or not db.collars:
                continue
            tolerance = _tolerance(dep.footprint)
            anew = {hole for (deposit, hole), plan in self.plan.holes.items()
                    if deposit == name and plan.values is not None}  # checked as collars of the input
            far = [(hole, _distance_m(dep.footprint, lon, lat)) for hole, lon, lat in db.collars if hole not in anew]
            far = [(hole, d) for hole, d in far if d > tolerance]
            if far:
                hole, d = max(far, key=lambda item: item[1])
                table, row = self.deposit_rows[name]
                self.err(table, row, "footprint", f"footprint leaves {len(far)} registered collar(s) of the deposit "
                         f"more than {tolerance:.0f} m outside: lon/lat swapped?", detail=f"{hole} is {_km(d)} from it")

    # -- which hole a survey or sample row belongs to
    def resolve_hole(self, table: Table, row: Row) -> tuple[str, str] | None:
        hole = row.get("hole_id")
        if hole is None:
            self.missing(table, row, "hole_id", "hole id missing")
            return None
        deposit = self.deposit_of(table, row)
        if deposit is not None:
            key = (deposit, hole)
            if key in self.hole_rows or key in self.state.holes:
                return key
            self.err(table, row, "hole_id", "unknown hole", hole,
                     detail=f"not in the collar files nor in deposit {deposit!r} in the database")
            return None
        in_batch = sorted(self.batch_by_name.get(hole, ()))
        candidates = in_batch or sorted(h.deposit for h in self.state.holes_named(hole))
        if len(candidates) == 1:
            return candidates[0], hole
        if not candidates:
            self.err(table, row, "hole_id", "unknown hole", hole,
                     detail="not in the collar files nor the database")
        else:
            self.err(table, row, "hole_id", "ambiguous hole id: add a DEPOSIT column or use --deposit", hole,
                     detail=f"in deposits {', '.join(candidates)}")
        return None

    def hole_plan(self, key: tuple[str, str]) -> HolePlan:
        plan = self.plan.holes.get(key)
        if plan is None:
            plan = self.plan.holes[key] = HolePlan(*key)
        return plan

    def length_of(self, key: tuple[str, str]) -> float | None:
        """The hole's length as it will be (None: unknown because its collar row is bad)."""
        plan = self.plan.holes.get(key)
        if plan is not None and plan.values is not None:
            return plan.values["length_m"]
        if key in self.hole_rows:
            return None
        db = self.state.holes.get(key)
        return db.values["length_m"] if db else None

    # -- surveys
    def surveys(self) -> None:
        sets: dict[tuple[str, str], list[tuple[Table, Row, float, float, float]]] = defaultdict(list)
        bad: set[tuple[str, str]] = set()
        for table in self.of("surveys"):
            for row in table.rows:
                key = self.resolve_hole(table, row)
                if key is None:
                    continue
                v = row.values
                depth = v.get("depth")
                ok = True
                if depth is None:
                    self.missing(table, row, "depth", "survey depth missing")
                    ok = False
                elif depth < 0:
                    self.err(table, row, "depth", "survey depth must be >= 0", depth)
                    ok = False
                dip = self.angle_dip(table, row)
                if dip is None:
                    self.missing(table, row, "inclination" if "inclination" in table.columns else "dip",
                                 "survey dip missing")
                azimuth = self.azimuth(table, row, "azimuth")
                if azimuth is None:
                    self.missing(table, row, "azimuth", "survey azimuth missing")
                if not ok or depth is None or dip is None or dip is False or azimuth is None or azimuth is False:
                    bad.add(key)
                    continue
                sets[key].append((table, row, depth, dip, azimuth))
        checked = [(key, stations) for key, stations in sets.items()
                   if self.survey_set(key, stations, key in bad)]
        self.doglegs(checked)

    def survey_set(self, key: tuple[str, str], stations, has_bad_rows: bool) -> bool:
        length = self.length_of(key)
        ok = not has_bad_rows
        previous = None
        for table, row, depth, _dip, _azi in stations:
            if previous is not None and depth <= previous[2]:
                self.err(table, row, "depth", "survey depths must increase down the hole", depth,
                         detail=f"after {_m(previous[2])} at line {previous[1].line}")
                ok = False
            if length is not None and depth > length:
                self.err(table, row, "depth", "survey depth beyond the end of hole", depth,
                         detail=f"hole {key[1]} is {_m(length)} long")
                ok = False
            previous = (table, row, depth)
        plan = self.hole_plan(key)
        plan.surveys = [(d, dip, azi) for _t, _r, d, dip, azi in stations]
        if ok:
            self.collar_warning(key, stations)
        return ok

    def collar_warning(self, key: tuple[str, str], stations) -> None:
        table, row, depth, dip, azi = stations[0]
        if depth > 0:
            collar = self.collar_orientation(key)
            if collar is not None:
                detail = (f"from 0 m to {_m(depth)} the collar orientation is used: dip {format_value(collar[0])}, "
                          f"azimuth {format_value(collar[1])}")
            else:
                detail = (f"the collar has no dip/azimuth: the first survey's orientation is used from 0 m: "
                          f"dip {format_value(dip)}, azimuth {format_value(azi)}")
            self.warn(table, row, "depth", "no survey at the collar", depth, detail=detail)

    def doglegs(self, sets: list) -> None:
        """Warn about survey intervals bending more than the limit (all holes in one
        vectorised call; a hole that turns back on itself is an error)."""
        from mis.drillholes.desurvey import desurvey_offsets

        sets = [(key, stations) for key, stations in sets if len(stations) >= 2]
        if not sets:
            return
        flat = [s for _key, stations in sets for s in stations]
        md = np.array([s[2] for s in flat])
        offsets = np.cumsum([0] + [len(stations) for _key, stations in sets])
        try:
            *_enu, dogleg = desurvey_offsets(md, [s[3] for s in flat], [s[4] for s in flat], offsets)
        except ValueError:
            if len(sets) > 1:  # find the culprit(s) hole by hole
                for item in sets:
                    self.doglegs([item])
                return
            table, row = sets[0][1][0][0], sets[0][1][0][1]
            self.err(table, row, "depth", "impossible survey: the hole turns back on itself (dogleg ~180°)")
            return
        step = np.empty_like(md)
        step[1:] = np.diff(md)
        step[offsets[:-1]] = np.nan  # no interval ends at a hole's first station
        with np.errstate(invalid="ignore"):
            severity = dogleg * 30.0 / step
            over = np.flatnonzero(severity > self.options.dogleg_limit)
        limit = format_value(float(self.options.dogleg_limit))
        for i in over:
            t, r = flat[i][0], flat[i][1]
            self.warn(t, r, "depth", "unrealistic dogleg",
                      detail=f"{severity[i]:.1f}°/30 m between {_m(md[i - 1])} and {_m(md[i])}; "
                             f"the limit is {limit}°/30 m")

    def collar_orientation(self, key: tuple[str, str]) -> tuple[float, float] | None:
        """The collar's own dip/azimuth (None when its row gives none)."""
        plan = self.plan.holes.get(key)
        if plan is not None and plan.values is not None:
            if plan.values["dip"] is None:
                return None
            return plan.values["dip"], plan.values["azimuth"]
        db = self.state.holes.get(key)
        if db is not None:
            return db.values["dip"], db.values["azimuth"]
        return None

    # -- samples
    def samples(self) -> None:
        seen: dict[tuple[str, str, str], tuple[Table, Row]] = {}
        batch: dict[tuple[str, str], list[tuple[Table, Row, dict[str, Any]]]] = defaultdict(list)
        default_type = None
        if self.options.sample_type:
            uri, rule, detail = self.terms.resolve("sample_type", self.options.sample_type)
            if uri is None:
                self.findings.append(error("--sample-type", None, None, rule or "unknown sample_type term",
                                           self.options.sample_type,
                                           detail=detail))
            default_type = uri
        for table in self.of("samples"):
            for row in table.rows:
                key = self.resolve_hole(table, row)
                v = row.values
                name = v.get("sample_id")
                ok = key is not None
                if name is None:
                    self.missing(table, row, "sample_id", "sample id missing")
                    ok = False
                elif key is not None:
                    skey = (*key, name)
                    if skey in seen:
                        t0, r0 = seen[skey]
                        self.err(table, row, "sample_id", f"duplicate sample id in hole {key[1]}", name,
                                 detail=f"first at {t0.source}:{r0.line}")
                        ok = False
                    else:
                        seen[skey] = (table, row)
                start, end = v.get("from"), v.get("to")
                for f, val in (("from", start), ("to", end)):
                    if val is None:
                        self.missing(table, row, f, "interval depth missing")
                if start is None or end is None:
                    ok = False
                elif start < 0:
                    self.err(table, row, "from", "depth must be >= 0", start)
                    ok = False
                elif start >= end:
                    self.err(table, row, "to", "from must be less than to", end, detail=f"from {format_value(start)}")
                    ok = False
                elif key is not None:
                    length = self.length_of(key)
                    if length is not None and end > length:
                        self.err(table, row, "to", "interval beyond the end of hole", end,
                                 detail=f"hole {key[1]} is {_m(length)} long")
                        ok = False
                sample_type = default_type
                if "sample_type" in v:
                    sample_type = self.term(table, row, "sample_type", v["sample_type"])
                    ok = ok and sample_type is not None
                elif "sample_type" not in row.invalid and not self.options.sample_type:
                    self.err(table, row, "sample_type", "sample type missing: give a SAMPLE_TYPE or --sample-type")
                    ok = False
                elif sample_type is None:
                    ok = False
                lithology = None
                if "lithology" in v:
                    lithology = self.term(table, row, "lithology", v["lithology"])
                    ok = ok and lithology is not None
                if not ok or key is None:
                    continue
                values = {"from_m": start, "to_m": end, "sample_type_uri": sample_type,
                          "lithology_uri": lithology, "preparation": v.get("preparation"),
                          "description": v.get("description")}
                batch[key].append((table, row, {"name": name, **values}))
        for key, rows in batch.items():
            self.overlaps(key, rows)
            plan = self.hole_plan(key)
            for _t, _r, values in rows:
                plan.samples[values["name"]] = {k: values[k] for k in SAMPLE_FIELDS}

    def overlaps(self, key: tuple[str, str], rows) -> None:
        """Intervals of the same sample type in one hole must not overlap (those registered
        before count too, unless this input replaces them)."""
        names = {values["name"] for _t, _r, values in rows}
        intervals: list[tuple[float, float, str, str, Table | None, Row | None]] = []
        for table, row, values in rows:
            intervals.append((values["from_m"], values["to_m"], values["sample_type_uri"], values["name"],
                              table, row))
        db = self.state.holes.get(key)
        if db is not None:
            for name, values in db.samples.items():
                if name not in names:
                    intervals.append((values["from_m"], values["to_m"], values["sample_type_uri"], name,
                                      None, None))
        by_type: dict[str, list] = defaultdict(list)
        for item in intervals:
            by_type[item[2]].append(item)
        for items in by_type.values():
            items.sort(key=lambda i: (i[0], i[1]))
            reach = None  # the interval reaching deepest so far
            for item in items:
                if reach is not None and item[0] < reach[1]:
                    first, second = (reach, item) if item[4] is not None else (item, reach)
                    if second[4] is not None:
                        where = (f"at {first[4].source}:{first[5].line}" if first[4] is not None
                                 else "registered in the database")
                        self.err(second[4], second[5], "from", f"interval overlaps sample {first[3]!r}",
                                 second[0], detail=f"{first[3]} is {format_value(first[0])}-"
                                 f"{format_value(first[1])} m, {where}")
                if reach is None or item[1] > reach[1]:
                    reach = item

    # -- rules across tables
    def collar_fills_and_lengths(self) -> None:
        """Fill a collar without dip/azimuth from the first survey (else vertical), and make
        sure a new length still covers what is registered and not replaced."""
        for key, plan in self.plan.holes.items():
            if plan.values is None:
                continue
            table, row = self.hole_rows[key]
            db = self.state.holes.get(key)
            surveys = plan.surveys if plan.surveys is not None else (db.surveys if db else [])
            if plan.values["dip"] is None:
                if surveys:
                    plan.values["dip"], plan.values["azimuth"] = surveys[0][1], surveys[0][2]
                else:
                    plan.values["dip"], plan.values["azimuth"] = -90.0, 0.0
                    self.warn(table, row, "dip", "no collar dip and no survey: the hole is taken as vertical",
                              detail="dip -90")
            if db is None:
                continue
            length = plan.values["length_m"]
            if plan.surveys is None:
                deeper = [d for d, _a, _b in db.surveys if d > length]
                if deeper:
                    self.err(table, row, "length", "hole length shorter than a registered survey", length,
                             detail=f"survey at {_m(max(deeper))}")
            for name, values in db.samples.items():
                if name not in plan.samples and values["to_m"] > length:
                    self.err(table, row, "length", f"hole length shorter than registered sample {name!r}",
                             length, detail=f"{name} ends at {_m(values['to_m'])}")

    def run(self) -> tuple[Plan, list[Finding]]:
        for table in self.tables:
            self.findings.extend(table.findings)
        self.deposits()
        self.collars()
        self.registered_collars()
        self.surveys()
        self.samples()
        self.collar_fills_and_lengths()
        self.findings = sort_findings(self.findings, [t.source for t in self.tables])
        return self.plan, self.findings


def _unclosed_ring(geometry: dict) -> int | None:
    """The 1-based number of the first polygon ring of a GeoJSON geometry whose last
    position is not its first (shapely would close it silently), else None."""
    coords = geometry.get("coordinates")
    polygons = [coords] if geometry.get("type") == "Polygon" else coords if geometry.get("type") == "MultiPolygon" \
        else []
    n = 0
    for polygon in polygons if isinstance(polygons, list) else []:
        for ring in polygon if isinstance(polygon, list) else []:
            n += 1
            if isinstance(ring, list) and len(ring) >= 2 and isinstance(ring[0], list) and ring[0] != ring[-1]:
                return n
    return None


def _tolerance(footprint: Any) -> float:
    return POINT_FOOTPRINT_TOLERANCE_M if footprint.geom_type == "Point" else FOOTPRINT_TOLERANCE_M


def _distance_m(footprint: Any, lon: float, lat: float) -> float:
    """Metres on the WGS84 ellipsoid from (lon, lat) to the nearest point of ``footprint``
    (0 inside it)."""
    from pyproj import Geod
    from shapely.geometry import Point
    from shapely.ops import nearest_points

    point = Point(lon, lat)
    if footprint.geom_type != "Point" and footprint.covers(point):
        return 0.0
    nearest = nearest_points(footprint, point)[0]
    return float(Geod(ellps="WGS84").inv(nearest.x, nearest.y, lon, lat)[2])


def _km(metres: float) -> str:
    return f"{metres / 1000:,.1f} km" if metres >= 1000 else f"{metres:.0f} m"


def _inclination(v: _Validator, table: Table, row: Row, f: str, value: float) -> float | bool:
    if not 0 <= value <= 180:
        v.err(table, row, f, "inclination out of range 0..180", value)
        return False
    return value - 90.0


_GEOGRAPHIC: dict[int, bool] = {}


def _is_geographic(epsg: int) -> bool:
    if epsg not in _GEOGRAPHIC:
        from pyproj import CRS

        _GEOGRAPHIC[epsg] = bool(CRS.from_epsg(epsg).is_geographic)
    return _GEOGRAPHIC[epsg]


def _is_wgs84_geojson_crs(crs: Any) -> bool:
    name = str((crs.get("properties") or {}).get("name", "")) if isinstance(crs, dict) else str(crs)
    return name.upper().replace("::", ":").endswith(("CRS84", "EPSG:4326", "EPSG:4326"))


def validate(tables: list[Table], state: State, terms: TermIndex, options: Options = Options()
             ) -> tuple[Plan, list[Finding]]:
    """Apply every rule to the input tables; return the plan and all findings, in input
    order by file, then by line (errors before warnings on a line)."""
    return _Validator(tables, state, terms, options).run()
