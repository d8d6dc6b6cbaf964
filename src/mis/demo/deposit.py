"""A plausible porphyry Cu-Mo deposit as the files a data manager would bring.

Deterministic: the same files every time, so that ``mis demo`` is idempotent. The layout
(deposit YAML + collar/survey/sample CSV tables) is the one ``mis register`` reads.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

DEPOSIT = "Quebrada Azul"
CENTRE = (-68.880, -22.940)  # lon, lat: Atacama, Chile (fictional deposit)


@dataclass(frozen=True)
class SampleFiles:
    deposit: Path
    collars: Path
    surveys: Path
    samples: Path

    def all(self) -> list[Path]:
        return [self.deposit, self.collars, self.surveys, self.samples]


def _lithology(depth: float, rng: np.random.Generator) -> str:
    """Leached cap and andesite over a mineralised porphyry stock with breccia bodies."""
    if depth < 60:
        return "andesite"
    if depth < 140:
        return str(rng.choice(["andesite", "dacite"]))
    return str(rng.choice(["granodiorite", "porphyry", "breccia", "diorite"], p=[0.4, 0.35, 0.15, 0.1]))


def write_sample_deposit(directory: Path, holes: int = 6, plugs_per_hole: int = 6) -> SampleFiles:
    """Write the sample deposit's files into ``directory`` (created) and return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261121)
    lon0, lat0 = CENTRE
    footprint = [[lon0 - 0.02, lat0 - 0.02], [lon0 + 0.02, lat0 - 0.02], [lon0 + 0.025, lat0 + 0.015],
                 [lon0, lat0 + 0.025], [lon0 - 0.022, lat0 + 0.012], [lon0 - 0.02, lat0 - 0.02]]
    files = SampleFiles(directory / "deposit.yaml", directory / "collars.csv",
                        directory / "surveys.csv", directory / "samples.csv")
    files.deposit.write_text(yaml.safe_dump({
        "name": DEPOSIT,
        "occurrence_type": "deposit",
        "deposit_model": "porphyry Cu-Mo",
        "commodities": ["Cu", "Mo", "Au"],
        "country": "CL",
        "description": "Sample porphyry Cu-Mo deposit shipped with MIS: a granodiorite-porphyry "
                       "stock with hydrothermal breccias under an andesite cover.",
        "source": "MIS built-in sample data (synthetic)",
        "footprint": {"type": "Polygon", "coordinates": [footprint]},
    }, sort_keys=False))

    collar_rows, survey_rows, sample_rows = [], [], []
    for h in range(holes):
        hole = f"QA-{h + 1:03d}"
        angle = 2 * np.pi * h / holes
        lon = round(lon0 + 0.008 * np.cos(angle), 6)
        lat = round(lat0 + 0.006 * np.sin(angle), 6)
        length = float(400 + 60 * h)
        azimuth = float((-90 - np.degrees(angle)) % 360)  # drilled towards the centre
        dip = -70.0 + 2 * h
        collar_rows.append({
            "HOLE_ID": hole, "DEPOSIT": DEPOSIT, "LON": lon, "LAT": lat,
            "Z": round(3850 + 30 * np.cos(angle) + 5 * h, 1), "EOH": length, "CRS": "EPSG:4326",
            "AZIMUTH": round(azimuth, 1), "DIP": dip, "DRILLING_METHOD": "diamond core",
            "START_DATE": f"2025-{3 + h:02d}-01", "END_DATE": f"2025-{3 + h:02d}-24",
            "OPERATOR": "Minera Quebrada Azul SpA",
        })
        for depth in np.arange(0, length + 1, 50.0):
            # curved holes: flattening and drifting clockwise with depth
            survey_rows.append({
                "HOLE_ID": hole, "DEPTH": float(depth),
                "AZIMUTH": round((azimuth + 0.012 * depth) % 360, 2),
                "DIP": round(dip + 0.02 * depth, 2),
            })
        tops = np.linspace(30, length - 30, plugs_per_hole)
        for p, top in enumerate(tops):
            top = round(float(top), 2)
            sample_rows.append({
                "HOLE_ID": hole, "FROM": top, "TO": round(top + 0.3, 2),
                "SAMPLE_ID": f"{hole}-P{p + 1:02d}",
                "SAMPLE_TYPE": "polished thin section" if p % 2 == 0 else "core photo",
                "LITHOLOGY": _lithology(top, rng),
            })
    for path, rows in ((files.collars, collar_rows), (files.surveys, survey_rows),
                       (files.samples, sample_rows)):
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return files
