"""Export deposits back to the registration layout: ``deposits.yaml`` + three CSV tables.

The files are exactly what ``mis register`` reads, and the round trip is lossless:
registering an export into an empty catalogue and exporting again gives identical
files, and registering an export into the catalogue it came from changes nothing.
Numbers are written in their shortest exact form (``repr``), dates as ISO 8601,
vocabulary concepts by a name that resolves back to the same concept (preferred label,
the notation for commodities such as ``Cu``, else the URI).

Layout (one header row, comma separated, UTF-8)::

    collars.csv  HOLE_ID, DEPOSIT, X, Y, EPSG, Z, LENGTH, DIP, AZIMUTH, AZIMUTH_REFERENCE,
                 DECLINATION, ELEVATION_REFERENCE, DRILLING_METHOD, START_DATE, END_DATE,
                 OPERATOR, CUSTODIAN, PURPOSE
    surveys.csv  HOLE_ID, DEPOSIT, DEPTH, DIP, AZIMUTH
    samples.csv  HOLE_ID, DEPOSIT, SAMPLE_ID, FROM, TO, SAMPLE_TYPE, LITHOLOGY, PREPARATION,
                 DESCRIPTION
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mis.catalogue.queries import HOLE_WITH_DEPOSIT, PLUG_WITH_HOLE, STATION_WITH_HOLE
from mis.catalogue.register.validate import DEPOSIT_FIELDS, SCHEMES

__all__ = ["COLLAR_HEADER", "ExportResult", "SAMPLE_HEADER", "SURVEY_HEADER", "export"]

COLLAR_HEADER = ("HOLE_ID", "DEPOSIT", "X", "Y", "EPSG", "Z", "LENGTH", "DIP", "AZIMUTH", "AZIMUTH_REFERENCE",
                 "DECLINATION", "ELEVATION_REFERENCE", "DRILLING_METHOD", "START_DATE", "END_DATE",
                 "OPERATOR", "CUSTODIAN", "PURPOSE")
_COLLAR_SQL = ("h.name", "d.name", "h.collar_x", "h.collar_y", "h.collar_epsg", "h.elevation_m", "h.length_m",
               "h.dip", "h.azimuth", "h.azimuth_reference", "h.magnetic_declination_deg",
               "h.elevation_reference", "h.drilling_method_uri", "h.start_date", "h.end_date", "h.operator",
               "h.core_custodian", "h.purpose")
SURVEY_HEADER = ("HOLE_ID", "DEPOSIT", "DEPTH", "DIP", "AZIMUTH")
SAMPLE_HEADER = ("HOLE_ID", "DEPOSIT", "SAMPLE_ID", "FROM", "TO", "SAMPLE_TYPE", "LITHOLOGY", "PREPARATION",
                 "DESCRIPTION")
_SAMPLE_SQL = ("h.name", "d.name", "p.name", "p.from_m", "p.to_m", "p.sample_type_uri", "p.lithology_uri",
               "p.preparation", "p.description")


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    deposits: int = 0
    holes: int = 0
    surveys: int = 0
    samples: int = 0

    def summary(self) -> str:
        return (f"exported {self.deposits} deposit(s), {self.holes} hole(s), {self.surveys} survey station(s), "
                f"{self.samples} sample(s) to {', '.join(str(f) for f in self.files)}")


def number(value: float | int | None) -> str:
    """Shortest text that reads back as the same float (``100`` for 100.0)."""
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return number(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


class _Names:
    """Concept URI -> the name to write: one that the lookup resolves back to the URI."""

    def __init__(self, index) -> None:
        self.index = index
        self.cache: dict[tuple[str, str], str] = {}

    def __call__(self, uri: str | None, fieldname: str) -> str:
        if uri is None:
            return ""
        scheme = SCHEMES[fieldname][0]
        key = (uri, scheme)
        if key not in self.cache:
            self.cache[key] = self._pick(uri, scheme, prefer_notation=fieldname == "commodities")
        return self.cache[key]

    def _pick(self, uri: str, scheme: str, prefer_notation: bool) -> str:
        term = self.index.terms.get(uri)
        if term is None:
            return uri
        candidates = [term.pref_label, term.notation]
        if prefer_notation:
            candidates.reverse()
        for name in candidates:
            if not name:
                continue
            try:
                if self.index.resolve(name, scheme).uri == uri:
                    return name
            except LookupError:
                continue
        return uri


def _csv(path: Path, header: Iterable[str], rows: Iterable[Iterable[Any]]) -> int:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    n = 0
    for row in rows:
        writer.writerow([_text(v) for v in row])
        n += 1
    path.write_text(buf.getvalue(), encoding="utf-8", newline="")
    return n


def export(out_dir: Path | str, deposits: Iterable[str] | None = None, *, url: str | None = None) -> ExportResult:
    """Write ``deposits.yaml``, ``collars.csv``, ``surveys.csv``, ``samples.csv`` for the
    named deposits (all when None) into ``out_dir``; sorted by natural keys, so that the
    same catalogue always gives the same bytes. Unknown deposit names raise ValueError."""
    import shapely
    from shapely.geometry import mapping

    from mis.catalogue.session import psycopg_cursor, transaction
    from mis.vocab.lookup import TermIndex

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = ExportResult()
    with transaction(url) as session:
        cur = psycopg_cursor(session)
        names = _Names(TermIndex.from_session(session, sorted({s for s, _w in SCHEMES.values()})))
        if deposits is None:
            cur.execute("SELECT id, name FROM deposit ORDER BY name")
        else:
            wanted = list(dict.fromkeys(deposits))
            cur.execute("SELECT id, name FROM deposit WHERE name = ANY(%s) ORDER BY name", [wanted])
        found = cur.fetchall()
        if deposits is not None:
            missing = sorted(set(wanted) - {n for _i, n in found})
            if missing:
                raise ValueError(f"unknown deposit(s): {', '.join(missing)}")
        ids = [i for i, _n in found]
        cur.execute(f"SELECT id, name, {', '.join(DEPOSIT_FIELDS)}, ST_AsBinary(footprint) FROM deposit "
                    "WHERE id = ANY(%s) ORDER BY name", [ids])
        dep_rows = cur.fetchall()
        cur.execute("SELECT deposit_id, commodity_uri FROM deposit_commodity WHERE deposit_id = ANY(%s) "
                    "ORDER BY deposit_id, rank, commodity_uri", [ids])
        commodities: dict[int, list[str]] = {}
        for dep_id, uri in cur.fetchall():
            commodities.setdefault(dep_id, []).append(uri)
        docs = []
        for rec in dep_rows:
            v = dict(zip(DEPOSIT_FIELDS, rec[2:-1], strict=False))
            doc: dict[str, Any] = {"name": rec[1]}
            if v["occurrence_type_uri"]:
                doc["occurrence_type"] = names(v["occurrence_type_uri"], "occurrence_type")
            if v["deposit_model_uri"]:
                doc["deposit_model"] = names(v["deposit_model_uri"], "deposit_model")
            elif v["deposit_model_note"]:
                doc["deposit_model"] = v["deposit_model_note"]
            if commodities.get(rec[0]):
                doc["commodities"] = [names(u, "commodities") for u in commodities[rec[0]]]
            for f in ("country", "description", "source"):
                if v[f] is not None:
                    doc[f] = v[f]
            doc["footprint"] = _plain(mapping(shapely.from_wkb(rec[-1])))
            docs.append(doc)
        path = out / "deposits.yaml"
        path.write_text(yaml.safe_dump(docs, sort_keys=False, allow_unicode=True, width=100, default_flow_style=None),
                        encoding="utf-8")
        result.files.append(path)
        result.deposits = len(docs)

        cur.execute(f"SELECT {', '.join(_COLLAR_SQL)} FROM {HOLE_WITH_DEPOSIT} "
                    "WHERE h.deposit_id = ANY(%s) ORDER BY d.name, h.name", [ids])
        collars = [(*r[:12], names(r[12], "drilling_method"), *r[13:]) for r in cur.fetchall()]
        result.holes = _csv(out / "collars.csv", COLLAR_HEADER, collars)
        cur.execute(f"SELECT h.name, d.name, s.depth_m, s.dip, s.azimuth FROM {STATION_WITH_HOLE} "
                    "WHERE h.deposit_id = ANY(%s) ORDER BY d.name, h.name, s.depth_m", [ids])
        result.surveys = _csv(out / "surveys.csv", SURVEY_HEADER, cur.fetchall())
        cur.execute(f"SELECT {', '.join(_SAMPLE_SQL)} FROM {PLUG_WITH_HOLE} "
                    "WHERE h.deposit_id = ANY(%s) "
                    "ORDER BY d.name, h.name, p.from_m, p.to_m, p.name", [ids])
        samples = [(*r[:5], names(r[5], "sample_type"), names(r[6], "lithology"), *r[7:]) for r in cur.fetchall()]
        result.samples = _csv(out / "samples.csv", SAMPLE_HEADER, samples)
        result.files += [out / "collars.csv", out / "surveys.csv", out / "samples.csv"]
    return result


def _plain(obj: Any) -> Any:
    """GeoJSON mapping with lists instead of tuples (plain YAML)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
