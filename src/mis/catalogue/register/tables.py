"""Read what data managers send into typed records that remember where they came from.

Inputs:

- drillhole tables as CSV (``,`` ``;`` or tab separated, UTF-8 with or without BOM):
  **collars**, **surveys** and **samples** (sample intervals). Column names are matched
  case-insensitively, ignoring spaces, dots and dashes, against the aliases in
  :data:`COLUMNS` (``EOH``, ``MAX_DEPTH``, ``TOTAL_DEPTH`` -> ``length``; ``HOLEID``,
  ``BHID`` -> ``hole_id``; ``EASTING`` -> ``x`` ...). Which table a file is, is told by
  its columns (:func:`detect_kind`) unless the caller names it.
- **deposits** as YAML or JSON (one mapping, a list of them, or ``{deposits: [...]}``)
  or GeoJSON (a FeatureCollection or one Feature; the geometry is the footprint).
- already-parsed rows (dicts, e.g. the body of an API request) through
  :meth:`Table.from_rows`, with a source label standing in for the file name.

Every value is converted to its type here (numbers, integers, dates, text); a value that
does not convert becomes a :class:`Finding` naming file, line and column, and the field
is marked invalid so that later rules do not report it a second time. The rules that
need more than one value (ranges, duplicates, vocabulary, holes ...) are in
:mod:`mis.catalogue.register.validate`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = [
    "COLUMNS",
    "KINDS",
    "Finding",
    "Kind",
    "Row",
    "Table",
    "detect_kind",
    "normalise_header",
    "read_file",
    "read_csv_text",
    "read_deposit_text",
]

Kind = Literal["deposits", "collars", "surveys", "samples"]
KINDS: tuple[Kind, ...] = ("deposits", "collars", "surveys", "samples")
Level = Literal["error", "warning"]

_NO_VALUE = object()


# --------------------------------------------------------------------------- findings
def format_value(value: Any) -> str:
    """A value as a user recognises it: numbers as written (-5, not -5.0), text quoted."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, (int,)):
        return str(value)
    if isinstance(value, (dt.date,)):
        return value.isoformat()
    if isinstance(value, tuple):
        return ", ".join(format_value(v) for v in value)
    if isinstance(value, str) and len(value) > SHOWN_CHARS:  # a message quotes, it does not copy
        return repr(value[:SHOWN_CHARS]) + f" ... ({len(value)} characters)"
    return repr(value)


#: Characters of a long value a message quotes.
SHOWN_CHARS = 80


@dataclass(frozen=True)
class Finding:
    """One problem found in the input: ``file:line: column: rule (value ...; detail)``."""

    level: Level
    source: str
    line: int | None
    column: str | None
    rule: str
    value: Any = _NO_VALUE
    detail: str | None = None

    @property
    def is_error(self) -> bool:
        return self.level == "error"

    @property
    def message(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        text = f"{where}: {self.column}: {self.rule}" if self.column else f"{where}: {self.rule}"
        extra = []
        if self.value is not _NO_VALUE:
            extra.append(f"value {format_value(self.value)}")
        if self.detail:
            extra.append(self.detail)
        return f"{text} ({'; '.join(extra)})" if extra else text

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"

    def sort_key(self, order: dict[str, int] | None = None) -> tuple:
        """Input order of the source (else its name), line, errors first, column, rule."""
        rank = order.get(self.source, len(order)) if order else 0
        return (rank, self.source, self.line or 0, 0 if self.is_error else 1, self.column or "", self.rule)


def sort_findings(findings: list[Finding], sources: list[str]) -> list[Finding]:
    """Findings in the order of the inputs, then by line."""
    order: dict[str, int] = {}
    for source in sources:
        order.setdefault(source, len(order))
    return sorted(findings, key=lambda f: f.sort_key(order))


def error(source: str, line: int | None, column: str | None, rule: str, value: Any = _NO_VALUE,
          detail: str | None = None) -> Finding:
    return Finding("error", source, line, column, rule, value, detail)


def warning(source: str, line: int | None, column: str | None, rule: str, value: Any = _NO_VALUE,
            detail: str | None = None) -> Finding:
    return Finding("warning", source, line, column, rule, value, detail)


# --------------------------------------------------------------------------- columns
#: Canonical field -> (type, aliases). Types: str (text), name (a record's name: also a
#: path component of its image store, see :func:`check_text`), float, int (EPSG), date,
#: crs, term.
#: The canonical name itself is always accepted; matching ignores case, spaces, dots, dashes.
COLUMNS: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "collars": {
        "hole_id": ("name", ("HOLEID", "HOLE", "HOLE_NAME", "HOLENAME", "BHID", "BH_ID", "DHID", "DH_ID",
                            "BOREHOLE", "BOREHOLE_ID", "DRILLHOLE", "DRILLHOLE_ID", "COLLAR_ID")),
        "deposit": ("name", ("DEPOSIT_NAME", "PROJECT", "PROSPECT")),
        "x": ("float", ("EASTING", "EAST", "XCOLLAR", "X_COLLAR", "COLLAR_X", "X_M")),
        "y": ("float", ("NORTHING", "NORTH", "YCOLLAR", "Y_COLLAR", "COLLAR_Y", "Y_M")),
        "lon": ("float", ("LONGITUDE", "LONG", "LNG")),
        "lat": ("float", ("LATITUDE",)),
        "z": ("float", ("ELEVATION", "ELEV", "RL", "ZCOLLAR", "Z_COLLAR", "COLLAR_Z", "ALTITUDE",
                        "ELEVATION_M", "Z_M", "COLLAR_RL")),
        "epsg": ("crs", ("CRS", "SRID", "EPSG_CODE", "COORDINATE_SYSTEM", "COORD_SYS", "PROJECTION")),
        "length": ("float", ("EOH", "MAX_DEPTH", "TOTAL_DEPTH", "LENGTH_M", "HOLE_LENGTH", "DEPTH",
                             "FINAL_DEPTH", "END_DEPTH", "TD", "HOLE_DEPTH", "BOREHOLE_LENGTH",
                             "BOREHOLELENGTH_M")),
        "dip": ("float", ("COLLAR_DIP", "DIP_DEG")),
        "inclination": ("float", ("INC", "INCL", "COLLAR_INCLINATION")),
        "azimuth": ("float", ("AZI", "AZ", "AZIM", "BEARING", "COLLAR_AZIMUTH", "AZIMUTH_DEG")),
        "azimuth_reference": ("str", ("AZ_REF", "AZIMUTH_REF", "AZI_REF", "NORTH_REFERENCE",
                                      "NORTH_REF")),
        "declination": ("float", ("MAG_DEC", "MAGNETIC_DECLINATION", "MAGNETIC_DECLINATION_DEG",
                                  "DECLINATION_DEG")),
        "drilling_method": ("term", ("METHOD", "DRILL_METHOD", "DRILL_TYPE", "HOLE_TYPE",
                                     "DRILLINGMETHOD", "DRILLING_TYPE")),
        "start_date": ("date", ("DATE_START", "STARTED", "START", "DATE_STARTED", "DRILL_START",
                                "DRILLSTARTDATE")),
        "end_date": ("date", ("DATE_END", "COMPLETED", "FINISHED", "END", "DATE_COMPLETED",
                              "DRILL_END", "DRILLENDDATE")),
        "operator": ("str", ("COMPANY", "OPERATOR_NAME")),
        "custodian": ("str", ("CORE_CUSTODIAN", "CORE_STORE", "REPOSITORY", "CORECUSTODIAN")),
        "purpose": ("str", ("HOLE_PURPOSE", "PURPOSE_OF_HOLE")),
        "elevation_reference": ("str", ("ELEV_REF", "ELEVATION_REF", "Z_REFERENCE", "DATUM_REFERENCE")),
    },
    "surveys": {
        "hole_id": ("str", ()),  # aliases copied from collars below
        "deposit": ("str", ()),
        "depth": ("float", ("AT", "MD", "DISTANCE", "SURVEY_DEPTH", "DEPTH_M", "MEASURED_DEPTH",
                            "SURVEYDEPTH")),
        "dip": ("float", ("DIP_DEG",)),
        "inclination": ("float", ("INC", "INCL")),
        "azimuth": ("float", ("AZI", "AZ", "AZIM", "BEARING", "AZIMUTH_DEG")),
    },
    "samples": {
        "hole_id": ("str", ()),
        "deposit": ("str", ()),
        "sample_id": ("name", ("SAMPLE", "SAMPLEID", "SAMPLE_NAME", "SAMP_ID", "SAMPLE_NO",
                              "SAMPLE_NUMBER", "NAME")),
        "from": ("float", ("FROM_M", "DEPTH_FROM", "MFROM", "FROM_DEPTH", "DEPTHFROM", "TOP", "FROMDEPTH")),
        "to": ("float", ("TO_M", "DEPTH_TO", "MTO", "TO_DEPTH", "DEPTHTO", "BOTTOM", "TODEPTH")),
        "sample_type": ("term", ("TYPE", "SAMPLETYPE", "SAMP_TYPE", "SPECIMEN_TYPE")),
        "lithology": ("term", ("LITH", "LITHO", "ROCK_TYPE", "ROCKTYPE", "LITHOLOGY_CODE", "LITH_CODE")),
        "preparation": ("str", ("PREP", "PREPARATION_METHOD")),
        "description": ("str", ("COMMENT", "COMMENTS", "REMARKS", "NOTES", "DESC")),
    },
    "deposits": {
        "name": ("name", ("DEPOSIT", "DEPOSIT_NAME", "TITLE")),
        "occurrence_type": ("term", ("TYPE", "OCCURRENCETYPE", "OCCURRENCE")),
        "deposit_model": ("str", ("MODEL", "DEPOSITMODEL", "DEPOSIT_TYPE", "DEPOSITTYPE")),
        "commodities": ("list", ("COMMODITY", "COMMODITY_CODES", "COMMODITIES_CODES")),
        "country": ("str", ()),
        "description": ("str", ("DESC",)),
        "source": ("str", ("REFERENCE", "CITATION")),
        "footprint": ("geometry", ("GEOMETRY", "FOOTPRINT_WKT", "WKT", "SHAPE")),
        "lon": ("float", ("LONGITUDE", "LONG", "LNG")),
        "lat": ("float", ("LATITUDE",)),
    },
}
for _kind in ("surveys", "samples"):
    COLUMNS[_kind]["hole_id"] = COLUMNS["collars"]["hole_id"]
    COLUMNS[_kind]["deposit"] = COLUMNS["collars"]["deposit"]

#: Which canonical fields a table of each kind must have (alternatives in tuples).
REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "collars": (("hole_id",), ("length",), ("z",)),
    "surveys": (("hole_id",), ("depth",), ("dip", "inclination"), ("azimuth",)),
    "samples": (("hole_id",), ("sample_id",), ("from",), ("to",)),
    "deposits": (),
}

#: Values meaning "no value" in numeric, date and vocabulary columns.
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "-", "--"})


def normalise_header(name: str) -> str:
    """``'Max depth (m)'`` -> ``'MAX_DEPTH_M'``: upper case, runs of non-alphanumerics -> _."""
    return re.sub(r"[^0-9A-Z]+", "_", name.strip().upper()).strip("_")


def _alias_table(kind: str) -> dict[str, str]:
    table: dict[str, str] = {}
    for canonical, (_type, aliases) in COLUMNS[kind].items():
        for alias in (canonical, *aliases):
            table.setdefault(normalise_header(alias), canonical)
    return table


_ALIASES = {kind: _alias_table(kind) for kind in COLUMNS}


def detect_kind(headers: Iterable[str]) -> Kind | None:
    """Which drillhole table a CSV header describes: samples (FROM and TO), collars
    (coordinates), or surveys (DEPTH with DIP/INCLINATION/AZIMUTH); None if none fits."""
    normal = [normalise_header(h) for h in headers]

    def has(kind: str, *fields: str) -> bool:
        found = {_ALIASES[kind].get(h) for h in normal}
        return all(f in found for f in fields)

    if has("samples", "from", "to"):
        return "samples"
    if has("collars", "x", "y") or has("collars", "lon", "lat"):
        return "collars"
    if has("surveys", "depth") and (has("surveys", "dip") or has("surveys", "inclination")
                                    or has("surveys", "azimuth")):
        return "surveys"
    return None


# --------------------------------------------------------------------------- rows, tables
@dataclass(slots=True)
class Row:
    """One record: typed ``values`` by canonical field, its line, and fields that failed
    to convert (already reported)."""

    line: int | None
    values: dict[str, Any]
    invalid: set[str] = field(default_factory=set)
    #: Per-field line (YAML/JSON deposits: each key has its own line).
    lines: dict[str, int | None] | None = None
    #: Per-field spelling of the key, where records spell keys differently (deposits).
    names: dict[str, str] | None = None

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def name_of(self, name: str, default: str) -> str:
        return self.names.get(name, default) if self.names else default

    def line_of(self, name: str) -> int | None:
        if self.lines and name in self.lines:
            return self.lines[name]
        return self.line


@dataclass
class Table:
    """Typed records of one kind from one source (a file or a labelled batch of rows)."""

    kind: Kind
    source: str
    rows: list[Row]
    #: canonical field -> the column name as the source spells it (for messages).
    columns: dict[str, str]
    findings: list[Finding] = field(default_factory=list)

    def column(self, name: str) -> str:
        """The user's spelling of field ``name`` (the canonical upper-case name if absent)."""
        return self.columns.get(name) or (name if self.kind == "deposits" else name.upper())

    @property
    def ok(self) -> bool:
        return not any(f.is_error for f in self.findings)

    @classmethod
    def from_rows(cls, kind: Kind, rows: Iterable[Mapping[str, Any]], source: str = "<input>") -> Table:
        """A table from already-parsed records (dicts with column names or aliases as keys;
        values as text or already typed). Row numbers (1-based) stand in for lines."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
        rows = list(rows)
        for n, record in enumerate(rows, start=1):
            if not isinstance(record, Mapping):
                raise ValueError(f"{source}: row {n} of {kind} is not an object of column: value "
                                 f"pairs (got {type(record).__name__})")
        if kind == "deposits":
            return _deposit_table(rows, source, lines=None)
        headers: list[str] = []
        for r in rows:
            for key in r:
                if key not in headers:
                    headers.append(str(key))
        table, mapping = _start_table(kind, source, headers, header_line=None)
        for n, record in enumerate(rows, start=1):
            raw = {h: record.get(h) for h in headers}
            table.rows.append(_convert(table, n, [(mapping.get(i), raw[h]) for i, h in enumerate(headers)]))
        return table


def _start_table(kind: Kind, source: str, headers: list[str], header_line: int | None
                 ) -> tuple[Table, dict[int, str]]:
    """A table with its column mapping (header index -> canonical field) and the findings
    about the header itself (unknown, duplicate or missing columns)."""
    aliases = _ALIASES[kind]
    table = Table(kind, source, [], {})
    mapping: dict[int, str] = {}
    for i, header in enumerate(headers):
        canonical = aliases.get(normalise_header(header))
        if canonical is None:
            table.findings.append(warning(source, header_line, header, "unknown column, ignored"))
            continue
        if canonical in table.columns:
            table.findings.append(error(
                source, header_line, header, f"duplicate column: means the same as {table.columns[canonical]}"))
            continue
        table.columns[canonical] = header
        mapping[i] = canonical
    if kind == "collars":
        has_xy = "x" in table.columns and "y" in table.columns
        has_ll = "lon" in table.columns and "lat" in table.columns
        if not (has_xy or has_ll):
            table.findings.append(error(source, header_line, "X/Y or LON/LAT",
                                        "required columns missing: collar coordinates"))
    for alternatives in REQUIRED[kind]:
        if not any(a in table.columns for a in alternatives):
            name = " or ".join(a.upper() for a in alternatives)
            table.findings.append(error(source, header_line, name, "required column missing"))
    if kind == "surveys" and "dip" in table.columns and "inclination" in table.columns:
        table.findings.append(error(source, header_line, table.columns["inclination"],
                                    "give DIP or INCLINATION, not both"))
    return table, mapping


_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d/%m/%Y", "%d.%m.%Y", "%Y%m%d")


def _parse_number(text: str, decimal_comma: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        if decimal_comma and text.count(",") == 1:
            value = float(text.replace(",", "."))
        else:
            raise
    if not math.isfinite(value):
        raise ValueError(text)
    return value


#: Longest name (deposit, hole id, sample id) and longest other text a field may hold.
MAX_NAME_CHARS = 200
MAX_TEXT_CHARS = 10_000


#: Control characters (Unicode category Cc) and the line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: A name :func:`check_text` accepts as it is, but for ``.``/``..`` (the fast path).
_PLAIN_NAME = re.compile("[^\x00-\x1f\x7f-\x9f\u2028\u2029/\\\\]*")


def check_text(text: str, kind_type: str = "str") -> str:
    """``text`` if a field of ``kind_type`` may hold it, else ValueError with the rule.

    Any text: no NUL (PostgreSQL cannot store it), at most :data:`MAX_TEXT_CHARS`. A name
    (``kind_type="name"``) at most :data:`MAX_NAME_CHARS`, not ``.`` or ``..``, no path
    separator and no control character: names become path components of image stores
    and parts of ``HOLE/PLUG`` references, and are shown on every page."""
    if "\x00" in text:
        raise ValueError("contains a NUL character")
    limit = MAX_NAME_CHARS if kind_type == "name" else MAX_TEXT_CHARS
    if len(text) > limit:
        raise ValueError(f"longer than {limit} characters")
    if kind_type == "name":
        if text in (".", ".."):
            raise ValueError("a name cannot be '.' or '..'")
        if "/" in text or "\\" in text:
            raise ValueError("a name cannot contain / or \\")
        if _CONTROL.search(text):
            raise ValueError("a name cannot contain control characters or line breaks")
    return text


def _convert_value(kind_type: str, raw: Any, decimal_comma: bool) -> Any:
    """Convert one raw value; None = no value; raises ValueError with the rule's words."""
    if raw is None:
        return None
    if isinstance(raw, (Mapping, list, tuple, set)):
        raise ValueError("expected a single value, not a list or mapping")
    if kind_type in ("str", "name"):
        text = str(raw).strip()
        return check_text(text, kind_type) or None
    if isinstance(raw, str):
        text = raw.strip()
        if text.casefold() in MISSING_TOKENS:
            return None
    else:
        text = raw
    if kind_type == "float":
        if isinstance(text, bool):
            raise ValueError("not a number")
        if isinstance(text, (int, float)):
            if not math.isfinite(float(text)):
                raise ValueError("not a number")
            return float(text)
        try:
            return _parse_number(str(text), decimal_comma)
        except ValueError:
            raise ValueError("not a number") from None
    if kind_type == "date":
        if isinstance(text, dt.datetime):
            return text.date()
        if isinstance(text, dt.date):
            return text
        for fmt in _DATE_FORMATS:
            try:
                return dt.datetime.strptime(str(text), fmt).date()
            except ValueError:
                continue
        raise ValueError("not a date (use YYYY-MM-DD)")
    if kind_type == "crs":
        return parse_crs(text)
    if kind_type == "term":
        return check_text(str(text).strip()) or None
    raise AssertionError(kind_type)


def parse_crs(value: Any) -> int:
    """An EPSG code from ``32719``, ``'EPSG:32719'``, ``'epsg 32719'``, a WKT or PROJ string;
    ValueError if PROJ does not know it."""
    if isinstance(value, bool):
        raise ValueError("not a CRS")
    if isinstance(value, int) or (isinstance(value, float) and value == int(value)):
        return _known_epsg(int(value))
    text = str(value).strip()
    if len(text) > 2000 or "\x00" in text:
        raise ValueError("not a CRS: give an EPSG code (e.g. EPSG:32719)")
    match = re.fullmatch(r"(?i)(?:epsg)?\s*[: ]?\s*([0-9]{1,9})(?:\.0+)?", text)
    if match:
        return _known_epsg(int(match.group(1)))
    if text.upper() in ("WGS84", "WGS 84", "WGS_84"):
        return 4326
    return _epsg_of(text)


_EPSG_CACHE: dict[Any, int] = {}


def _known_epsg(code: int) -> int:
    if code not in _EPSG_CACHE:
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            CRS.from_epsg(code)
        except CRSError:
            raise ValueError("unknown CRS: not an EPSG code PROJ knows") from None
        _EPSG_CACHE[code] = code
    return _EPSG_CACHE[code]


def _epsg_of(text: str) -> int:
    if text not in _EPSG_CACHE:
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            code = CRS.from_user_input(text).to_epsg()
        except CRSError:
            code = None
        if code is None:
            raise ValueError("unknown CRS: give an EPSG code (e.g. EPSG:32719)")
        _EPSG_CACHE[text] = code
    return _EPSG_CACHE[text]


def _convert(table: Table, line: int | None, cells: list[tuple[str | None, Any]],
             decimal_comma: bool = False) -> Row:
    types = COLUMNS[table.kind]
    row = Row(line, {})
    values = row.values
    for canonical, raw in cells:
        if canonical is None:
            continue
        kind_type = types[canonical][0]
        if type(raw) is str:  # fast paths for the common cases (text, plain numbers)
            if kind_type == "str" and len(raw) <= MAX_TEXT_CHARS and "\x00" not in raw:
                text = raw.strip()
                if text:
                    values[canonical] = text
                continue
            if kind_type == "name" and len(raw) <= MAX_NAME_CHARS and _PLAIN_NAME.fullmatch(raw):
                text = raw.strip()
                if text not in (".", ".."):
                    if text:
                        values[canonical] = text
                    continue
            if kind_type == "float":
                try:
                    value = float(raw)
                    if value - value == 0.0:  # finite
                        values[canonical] = value
                        continue
                except ValueError:
                    pass
        try:
            value = _convert_value(kind_type, raw, decimal_comma)
        except ValueError as exc:
            row.invalid.add(canonical)
            shown = raw.strip() if isinstance(raw, str) else raw
            table.findings.append(error(table.source, line, table.column(canonical), str(exc), shown))
            continue
        if value is not None:
            values[canonical] = value
    return row


# --------------------------------------------------------------------------- CSV
def read_csv_text(data: bytes, source: str, kind: Kind | None = None) -> Table:
    """Parse CSV bytes into a table of ``kind`` (else told by its columns). Non-UTF-8
    bytes, malformed quoting, ragged rows and unconvertible values become findings naming
    the line; a file that cannot be read at all gives a table with no rows."""
    findings: list[Finding] = []
    text = _decode(data, source, findings)
    if text is None:
        return Table(kind or "collars", source, [], {}, findings)
    if not text.strip():
        findings.append(error(source, 1, None, "empty file: no header row"))
        return Table(kind or "collars", source, [], {}, findings)
    first_line = text.split("\n", 1)[0]
    delimiter = max([",", ";", "\t", "|"], key=first_line.count)
    if first_line.count(delimiter) == 0:
        delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        headers = next(reader)
    except csv.Error as exc:
        findings.append(error(source, reader.line_num or 1, None, f"malformed CSV: {exc}"))
        return Table(kind or "collars", source, [], {}, findings)
    headers = [h.strip() for h in headers]
    detected = kind or detect_kind(headers)
    if detected is None:
        findings.append(error(
            source, 1, None,
            "cannot tell which table this is from its columns; name it with --collars, "
            "--surveys, --samples or --deposits", tuple(headers)))
        return Table("collars", source, [], {}, findings)
    table, mapping = _start_table(detected, source, headers, header_line=1)
    table.findings[:0] = findings
    n_fields = len(headers)
    decimal_comma = delimiter != ","
    previous_end = reader.line_num
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            table.findings.append(error(source, reader.line_num, None, f"malformed CSV: {exc}"))
            break
        line = previous_end + 1
        previous_end = reader.line_num
        if not fields or (not fields[0].strip() and all(not f.strip() for f in fields)):
            continue  # blank line, or only separators
        if len(fields) != n_fields:
            table.findings.append(error(
                source, line, None, "ragged row", detail=f"{len(fields)} fields, the header has {n_fields}"))
            continue
        table.rows.append(_convert(table, line, [(mapping.get(i), v) for i, v in enumerate(fields)],
                                   decimal_comma))
    return table


def _decode(data: bytes, source: str, findings: list[Finding]) -> str | None:
    """Text of UTF-8 bytes. Lines that are not UTF-8 are reported (the first
    :data:`MAX_ENCODING_FINDINGS` of them) and read with U+FFFD in place of the bad bytes,
    so that the other rules still see the rest of the file."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        bad = 0
        for n, raw in enumerate(data.split(b"\n"), start=1):
            try:
                raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                bad += 1
                if bad <= MAX_ENCODING_FINDINGS:
                    findings.append(error(
                        source, n, None, "not valid UTF-8",
                        detail=f"byte 0x{raw[exc.start]:02x} at position {exc.start + 1}; "
                               "save the file as UTF-8"))
        if bad > MAX_ENCODING_FINDINGS:
            findings.append(error(source, None, None, "not valid UTF-8",
                                  detail=f"{bad - MAX_ENCODING_FINDINGS} more line(s) not shown"))
        text = data.decode("utf-8-sig", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


#: How many lines with bad bytes are reported one by one.
MAX_ENCODING_FINDINGS = 10


# --------------------------------------------------------------------------- deposits
class _LineDict(dict):
    """A mapping that remembers the line of itself and of each key (YAML/JSON input)."""

    line: int | None = 0
    lines: dict[str, int | None]


def _construct_map(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _LineDict:
    loader.flatten_mapping(node)
    out = _LineDict()
    out.line = node.start_mark.line + 1
    out.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[str(key)] = key_node.start_mark.line + 1
    return out


class _LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    pass


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)


#: Deepest nesting a deposit document may have (a GeoJSON MultiPolygon needs 7 levels
#: under its FeatureCollection); deeper input is refused before it is built.
MAX_DEPTH = 32


def _mark_line(mark: Any) -> int | None:
    """The 1-based line of a YAML event's mark; None where the parser gave no mark."""
    return mark.line + 1 if mark is not None else None


def _refuse_structure(text: str, source: str) -> Finding | None:
    """An error for YAML aliases (``*name``: a 427-byte "billion laughs" document expands
    to gigabytes) or nesting deeper than :data:`MAX_DEPTH`, found in one pass over the
    parser's events, before anything is constructed; None for a document without them.

    Registration input never needs an alias: each deposit is written out."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if isinstance(event, yaml.AliasEvent):
                return error(source, _mark_line(event.start_mark), None,
                             "YAML aliases (*name) are not accepted: write each value out",
                             detail=f"alias *{event.anchor}")
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    return error(source, _mark_line(event.start_mark), None,
                                 f"nested deeper than {MAX_DEPTH} levels: not a deposit document")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        return None  # reported with its line by the full load below (or read as JSON)
    return None


def read_deposit_text(data: bytes, source: str) -> Table:
    """Deposits from YAML, JSON or GeoJSON bytes."""
    findings: list[Finding] = []
    text = _decode(data, source, findings)
    if text is None:
        return Table("deposits", source, [], {}, findings)
    refused = _refuse_structure(text, source)
    if refused is not None:
        return Table("deposits", source, [], {}, [refused])
    try:
        doc = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a safe loader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        try:
            doc = json.loads(text)  # JSON that YAML 1.1 does not read (rare escapes)
        except RecursionError:
            return Table("deposits", source, [], {}, [error(
                source, None, None, f"nested deeper than {MAX_DEPTH} levels: not a deposit document")])
        except json.JSONDecodeError:
            line = mark.line + 1 if mark is not None else None
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            return Table("deposits", source, [], {}, [error(source, line, None, f"malformed YAML/JSON: {problem}")])
    records, problem = _deposit_records(doc)
    if problem:
        return Table("deposits", source, [], {}, [error(source, getattr(doc, "line", 1), None, problem)])
    return _deposit_table(records, source, lines=True)


def _deposit_records(doc: Any) -> tuple[list[Mapping[str, Any]], str | None]:
    """The deposit mappings in a YAML/JSON/GeoJSON document (GeoJSON features flattened:
    properties + ``footprint`` = geometry)."""
    if isinstance(doc, Mapping) and doc.get("type") in ("FeatureCollection", "Feature"):
        features = doc.get("features") if doc.get("type") == "FeatureCollection" else [doc]
        if not isinstance(features, list):
            return [], "a GeoJSON FeatureCollection needs a 'features' list"
        crs = doc.get("crs")
        records: list[Mapping[str, Any]] = []
        for feature in features:
            if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
                return [], "every member of 'features' must be a GeoJSON Feature"
            props = feature.get("properties") or {}
            flat = _LineDict({**props, "footprint": feature.get("geometry")})
            flat.line = getattr(feature, "line", 0) or None
            flat.lines = {**getattr(props, "lines", {}),
                          "footprint": getattr(feature, "lines", {}).get("geometry", flat.line)}
            if crs:
                flat["_crs"] = crs
            records.append(flat)
        return records, None
    if isinstance(doc, Mapping) and "deposits" in doc and isinstance(doc["deposits"], list):
        doc = doc["deposits"]
    if isinstance(doc, Mapping):
        return [doc], None
    if isinstance(doc, list) and all(isinstance(d, Mapping) for d in doc):
        return list(doc), None
    return [], "expected a deposit (a mapping with 'name', 'footprint' ...), a list of them, or GeoJSON"


def _deposit_table(records: list[Mapping[str, Any]], source: str, lines: bool | None) -> Table:
    aliases = _ALIASES["deposits"]
    table = Table("deposits", source, [], {})
    for n, record in enumerate(records, start=1):
        line = getattr(record, "line", None) if lines else n
        key_lines = dict(getattr(record, "lines", {})) if lines else {}
        field_lines: dict[str, int | None] = {}
        row = Row(line, {}, lines=field_lines)
        seen: dict[str, str] = {}
        for key, raw in record.items():
            key = str(key)
            if key == "_crs":
                row.values["_crs"] = raw
                continue
            canonical = aliases.get(normalise_header(key))
            where = key_lines.get(key, line)
            if canonical is None:
                table.findings.append(warning(source, where, key, "unknown field, ignored"))
                continue
            if canonical in seen:
                table.findings.append(
                    error(source, where, key, f"duplicate field: means the same as {seen[canonical]}"))
                continue
            seen[canonical] = key
            field_lines[canonical] = where
            table.columns.setdefault(canonical, key)
            kind_type = COLUMNS["deposits"][canonical][0]
            try:
                value = _deposit_value(kind_type, raw)
            except ValueError as exc:
                row.invalid.add(canonical)
                shown = raw if not isinstance(raw, Mapping) else _NO_VALUE
                table.findings.append(error(source, where, key, str(exc), shown))
                continue
            if value is not None:
                row.values[canonical] = value
        row.names = seen
        table.rows.append(row)
    return table


def _deposit_value(kind_type: str, raw: Any) -> Any:
    if raw is None:
        return None
    if kind_type != "geometry" and isinstance(raw, Mapping):
        raise ValueError("expected a single value, not a mapping")
    if kind_type not in ("geometry", "list") and isinstance(raw, list):
        raise ValueError("expected a single value, not a list")
    if kind_type == "list":
        if isinstance(raw, list) and any(isinstance(v, (list, Mapping)) for v in raw):
            raise ValueError("expected a list of names, not nested lists or mappings")
        items = raw if isinstance(raw, list) else re.split(r"[,;]", str(raw))
        out = [str(v).strip() for v in items if v is not None and str(v).strip()]
        return out or None
    if kind_type == "geometry":
        return raw  # parsed and checked in validate (GeoJSON mapping or WKT text)
    if kind_type == "term":
        text = check_text(str(raw).strip())
        return text or None
    return _convert_value(kind_type, raw, False)


# --------------------------------------------------------------------------- files
_TABLE_SUFFIXES = {".csv", ".txt", ".tsv", ".tab"}
_DEPOSIT_SUFFIXES = {".yaml", ".yml", ".json", ".geojson"}


def read_file(path: Path | str, kind: Kind | None = None, label: str | None = None) -> Table:
    """Read one input file; ``kind`` forces the table kind (else told by format/columns).
    ``label`` is the name used in messages (default: the path as given)."""
    path = Path(path)
    source = label or str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        unreadable = error(source, None, None, f"cannot read file: {exc.strerror}")
        return Table(kind or "collars", source, [], {}, [unreadable])
    suffix = path.suffix.lower()
    if kind == "deposits" or (kind is None and suffix in _DEPOSIT_SUFFIXES):
        return read_deposit_text(data, source)
    if kind is None and suffix not in _TABLE_SUFFIXES:
        stripped = data.lstrip()
        if stripped[:1] in (b"{", b"[") or stripped[:4] in (b"name", b"- na", b"---\n"):
            return read_deposit_text(data, source)
    return read_csv_text(data, source, kind)
