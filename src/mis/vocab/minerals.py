"""The curated mineral list (``data/minerals.csv``) joined to Warr (2021) IMA-CNMNC symbols.

The CSV says *which* minerals and groups MIS knows and adds what the IMA list lacks
(typical density, crystal system, display colour, group membership, verified mindat id);
the symbol (``skos:notation``), the approved formula and the IMA status come from the
supplementary table of Warr, L.N. (2021) "IMA-CNMNC approved mineral symbols",
Mineralogical Magazine 85, 291-320 (sheet "by mineral"), joined by name.

Only the few concepts that are not in Warr's list (plagioclase compositional ranges, some
informal groups) carry a symbol assigned by MIS; they are flagged ``symbol_source="MIS"``.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

#: The curated list shipped with the package.
MINERALS_CSV = Path(__file__).with_name("data") / "minerals.csv"
#: Warr (2021) table, relative to the vocabulary sources directory.
WARR_XLSX = Path("ima") / "Warr2021_IMA-CNMNC_mineral_symbols.xlsx"
WARR_SHEET = "by mineral"

KINDS = ("species", "group", "range")
CRYSTAL_SYSTEMS = (
    "cubic", "tetragonal", "hexagonal", "trigonal", "orthorhombic", "monoclinic",
    "triclinic", "amorphous",
)
MINERAL_CLASSES = (
    "native element", "sulfide", "oxide", "halide", "carbonate", "sulfate", "phosphate",
    "tungstate", "molybdate", "silicate",
)
_COLOUR = re.compile(r"^#[0-9a-f]{6}$")
_COLUMNS = (
    "name", "kind", "member_of", "symbol", "formula", "density_g_cm3", "crystal_system",
    "colour", "mindat_id", "mineral_class", "alt_labels", "definition",
)


class MineralDataError(ValueError):
    """The curated list or the Warr table breaks a rule; the message names file, line, field."""


@dataclass(frozen=True)
class WarrEntry:
    """One row of Warr (2021), sheet "by mineral"."""

    name: str
    symbol: str
    formula: str | None
    status: str | None
    row: int


@dataclass
class Mineral:
    """One concept of the mineral scheme, ready to be written as SKOS."""

    name: str
    slug: str
    kind: str
    member_of: list[str]
    symbol: str
    symbol_source: str  # "Warr 2021" | "MIS"
    formula: str
    density_g_cm3: float
    crystal_system: str | None
    colour: str
    mindat_id: int | None
    mineral_class: str
    alt_labels: list[str] = field(default_factory=list)
    definition: str | None = None
    ima_name: str | None = None
    ima_status: str | None = None
    members: list[str] = field(default_factory=list)  # filled in: names of narrower concepts

    @property
    def is_group(self) -> bool:
        return self.kind == "group"


def slugify(name: str) -> str:
    """URI slug of a mineral name: ASCII, lower case, ``-`` between words.

    >>> slugify("tetrahedrite-(Fe)"), slugify("halloysite-7Å"), slugify("K-feldspar")
    ('tetrahedrite-fe', 'halloysite-7a', 'k-feldspar')
    """
    ascii_ = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_.lower()).strip("-")


def join_key(name: str) -> str:
    """Key that joins a curated name to a Warr name ("Gold (aurum)" -> "gold")."""
    name = unicodedata.normalize("NFC", name).replace("\xa0", " ").strip().rstrip("*").strip()
    name = re.sub(r"\s+\([^)]*\)$", "", name)  # " (aurum)", not "-(Fe)"
    return name.casefold()


def clean_formula(formula: str) -> str:
    """Tidy a Warr formula: no-break spaces, the vacancy sign, footnote markers."""
    f = formula.replace("\xa0", " ")
    f = f.replace("\u0706", "\u25a1").replace("\u2610", "\u25a1")  # vacancy -> white square
    f = re.sub(r"\s*\(\d\)\s*$", "", f)  # trailing footnote "(4)"
    return re.sub(r"\s+", " ", f).strip()


def read_warr(path: Path) -> dict[str, WarrEntry]:
    """Warr (2021) sheet "by mineral" as ``{join_key(name): entry}``."""
    import openpyxl  # heavy; only the build needs it

    if not path.is_file():
        raise MineralDataError(f"{path}: Warr (2021) table not found")
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        if WARR_SHEET not in wb.sheetnames:
            raise MineralDataError(f"{path}: no sheet {WARR_SHEET!r} (has {wb.sheetnames})")
        ws = wb[WARR_SHEET]
        entries: dict[str, WarrEntry] = {}
        header_seen = False
        for rowno, row in enumerate(ws.iter_rows(values_only=True), start=1):
            cells = list(row[:4]) + [None] * (4 - len(row[:4]))
            name, symbol, formula, status = cells
            if not header_seen:
                header_seen = isinstance(name, str) and name.strip() == "Name"
                continue
            if not isinstance(name, str) or not name.strip():
                if entries:  # the table ends at the first empty row (notes follow)
                    break
                continue
            if not isinstance(symbol, str) or not symbol.strip():
                continue
            key = join_key(name)
            if key in entries:
                raise MineralDataError(
                    f"{path}: sheet {WARR_SHEET!r} row {rowno}: name {name.strip()!r} repeats "
                    f"row {entries[key].row}"
                )
            entries[key] = WarrEntry(
                name=name.strip(),
                symbol=symbol.strip(),
                formula=clean_formula(formula) if isinstance(formula, str) and formula.strip()
                else None,
                status=status.strip() if isinstance(status, str) and status.strip() else None,
                row=rowno,
            )
        if not header_seen:
            raise MineralDataError(f"{path}: sheet {WARR_SHEET!r} has no 'Name' header row")
        return entries
    finally:
        wb.close()


def _csv_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """Data rows of the curated CSV with their line numbers ('#' lines are comments)."""
    text = path.read_text(encoding="utf-8")
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise MineralDataError(f"{path}: empty")
    reader = csv.reader(io.StringIO("\n".join(line for _, line in lines)))
    rows = list(reader)
    header = rows[0]
    if tuple(header) != _COLUMNS:
        raise MineralDataError(
            f"{path}, line {lines[0][0]}: header must be {','.join(_COLUMNS)}"
        )
    out = []
    for (lineno, _), values in zip(lines[1:], rows[1:], strict=True):
        if len(values) != len(header):
            raise MineralDataError(
                f"{path}, line {lineno}: {len(values)} fields, expected {len(header)}"
            )
        out.append((lineno, {k: v.strip() for k, v in zip(header, values, strict=True)}))
    return out


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(";") if v.strip()]


def load_minerals(
    warr: dict[str, WarrEntry], csv_path: Path = MINERALS_CSV
) -> tuple[list[Mineral], list[str]]:
    """The curated minerals joined to Warr; also the curated names Warr does not list.

    Raises :class:`MineralDataError` naming the CSV line and field for any broken rule.
    """
    minerals: list[Mineral] = []
    not_in_warr: list[str] = []
    seen: dict[str, int] = {}
    slugs: dict[str, str] = {}
    for lineno, r in _csv_rows(csv_path):
        where = f"{csv_path}, line {lineno}"

        def bad(fieldname: str, rule: str, where: str = where, r: dict = r) -> MineralDataError:
            return MineralDataError(f"{where}, field {fieldname} ({r.get(fieldname)!r}): {rule}")

        name = r["name"]
        if not name:
            raise bad("name", "must not be empty")
        if name.casefold() in seen:
            raise bad("name", f"repeats line {seen[name.casefold()]}")
        seen[name.casefold()] = lineno
        slug = slugify(name)
        if slug in slugs:
            raise bad("name", f"its slug {slug!r} is already used by {slugs[slug]!r}")
        slugs[slug] = name
        if r["kind"] not in KINDS:
            raise bad("kind", f"must be one of {', '.join(KINDS)}")
        try:
            density = float(r["density_g_cm3"])
        except ValueError:
            raise bad("density_g_cm3", "must be a number (g/cm3)") from None
        if not 0.5 < density < 25:
            raise bad("density_g_cm3", "must lie between 0.5 and 25 g/cm3")
        system = r["crystal_system"] or None
        if system is not None and system not in CRYSTAL_SYSTEMS:
            raise bad("crystal_system", f"must be empty or one of {', '.join(CRYSTAL_SYSTEMS)}")
        if r["kind"] != "group" and system is None:
            raise bad("crystal_system", "is required for a species")
        colour = r["colour"].lower()
        if not _COLOUR.match(colour):
            raise bad("colour", "must be #rrggbb (hex)")
        mindat = None
        if r["mindat_id"]:
            if not r["mindat_id"].isdigit():
                raise bad("mindat_id", "must be a positive integer")
            mindat = int(r["mindat_id"])
        if r["mineral_class"] not in MINERAL_CLASSES:
            raise bad("mineral_class", f"must be one of {', '.join(MINERAL_CLASSES)}")

        entry = warr.get(join_key(name))
        if entry is None:
            not_in_warr.append(name)
            if not r["symbol"]:
                raise bad("symbol", "is required: the name is not in Warr (2021)")
            symbol, symbol_source = r["symbol"], "MIS"
            if not r["formula"]:
                raise bad("formula", "is required: the name is not in Warr (2021)")
        else:
            if r["symbol"] and r["symbol"] != entry.symbol:
                raise bad("symbol", f"differs from Warr (2021) {entry.symbol!r} (row {entry.row}); "
                          "leave it empty")
            symbol, symbol_source = entry.symbol, "Warr 2021"
        formula = r["formula"] or (entry.formula if entry else None)
        if not formula:
            raise bad("formula", f"is required: Warr (2021) row {entry.row if entry else '?'} "
                      "has none")
        minerals.append(Mineral(
            name=name, slug=slug, kind=r["kind"], member_of=_split(r["member_of"]),
            symbol=symbol, symbol_source=symbol_source, formula=formula,
            density_g_cm3=density, crystal_system=system, colour=colour, mindat_id=mindat,
            mineral_class=r["mineral_class"], alt_labels=_split(r["alt_labels"]),
            definition=r["definition"] or None,
            ima_name=entry.name if entry else None,
            ima_status=entry.status if entry else None,
        ))

    by_name = {m.name.casefold(): m for m in minerals}
    symbols: dict[str, str] = {}
    for m in minerals:
        key = m.symbol.casefold()
        if key in symbols:
            raise MineralDataError(
                f"{csv_path}: symbol {m.symbol!r} of {m.name!r} is also the symbol of "
                f"{symbols[key]!r}"
            )
        symbols[key] = m.name
        if m.symbol_source == "MIS" and key in {e.symbol.casefold() for e in warr.values()}:
            raise MineralDataError(
                f"{csv_path}: MIS symbol {m.symbol!r} of {m.name!r} is an IMA symbol already"
            )
        for parent in m.member_of:
            group = by_name.get(parent.casefold())
            if group is None:
                raise MineralDataError(
                    f"{csv_path}: {m.name!r} field member_of names {parent!r}, which is not "
                    "in the list"
                )
            if not group.is_group:
                raise MineralDataError(
                    f"{csv_path}: {m.name!r} field member_of names {parent!r}, which is not a group"
                )
            group.members.append(m.name)
    for m in minerals:
        if m.is_group and not m.members:
            raise MineralDataError(f"{csv_path}: group {m.name!r} has no members")
    _check_acyclic(minerals, csv_path)
    return minerals, not_in_warr


def _check_acyclic(minerals: list[Mineral], csv_path: Path) -> None:
    parents = {m.name.casefold(): [p.casefold() for p in m.member_of] for m in minerals}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            cycle = " -> ".join(path + (name,))
            raise MineralDataError(f"{csv_path}: member_of forms a cycle: {cycle}")
        for p in parents.get(name, []):
            visit(p, path + (name,))

    for name in parents:
        visit(name, ())
