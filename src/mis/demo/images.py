"""Sample images with known ground truth for the demo deposit.

Thin sections (RGB, reflected light), one core photo whose x axis maps onto depth, and
one multispectral band stack: each written as the files a microscopist would bring (the
image, sparse scribbles as a label PNG, a legend JSON) plus the dense truth MIS never
sees, used afterwards to measure accuracy. Deterministic by seed, so that re-running the
demo writes the same bytes and every import is recognised as already done.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image as PILImage

from mis.segment.synthetic import URI_PREFIX, synthetic_multispectral, synthetic_section


@dataclass(frozen=True)
class SampleImage:
    """One image to import, with what the demo needs to import, label and score it."""

    plug: str  # HOLE/PLUG
    files: tuple[Path, ...]  # the image, or one file per band
    modality: str
    pixel_size_um: float
    scribbles: Path
    truth: Path
    legend: Path
    model: str  # which demo model classifies it: "rf" (RGB) or "mgc" (multispectral)
    band_names: tuple[str, ...] = ()
    wavelengths_nm: tuple[float, ...] = ()
    depth_axis: str | None = None
    top_m: float | None = None
    bottom_m: float | None = None


#: what the multispectral stack's four synthetic phases stand for
MULTISPECTRAL_PHASES = ("quartz", "orthoclase", "biotite", "magnetite")


def _write_common(directory: Path, name: str, section,
                  names: tuple[str, ...] | None = None) -> tuple[Path, Path, Path]:
    scribbles, truth, legend = (directory / f"{name}-scribbles.png", directory / f"{name}-truth.png",
                                directory / f"{name}-legend.json")
    PILImage.fromarray(section.scribbles.astype(np.uint8)).save(scribbles)
    PILImage.fromarray(section.truth.astype(np.uint8)).save(truth)
    terms = names or tuple(c.removeprefix(URI_PREFIX) for c in section.classes)
    legend.write_text(json.dumps({str(k + 1): t for k, t in enumerate(terms)}, indent=1))
    return scribbles, truth, legend


def write_sample_images(directory: Path, plugs: list[tuple[str, float, float, str]], *,
                        small: bool = False) -> list[SampleImage]:
    """Write the images for ``plugs`` (``(HOLE/PLUG, from_m, to_m, sample type)``).

    Every polished thin section gets a reflected-light image (5 minerals of distinct colour
    and texture), the first core-photo plug a core photo spanning its interval along x,
    and the second thin section also a 5-band multispectral stack.
    """
    directory.mkdir(parents=True, exist_ok=True)
    side = 320 if small else 1536
    sections = [p for p in plugs if p[3] == "polished thin section"][: 2 if small else 6]
    photos = [p for p in plugs if p[3] == "core photo"][:1]
    out: list[SampleImage] = []
    for i, (plug, _top, _bottom, _kind) in enumerate(sections):
        s = synthetic_section((side, side), n_classes=5, seed=100 + i, grain_size=45.0,
                              scribble_fraction=0.004)
        path = directory / f"section-{i + 1}.png"
        PILImage.fromarray(s.image.transpose(1, 2, 0)).save(path)
        out.append(SampleImage(plug, (path,), "reflected-light", 2.0, *_write_common(directory, path.stem, s),
                               model="rf"))
    for plug, top, bottom, _kind in photos:
        width = 600 if small else 3000  # 0.1 mm pixels over the plug's 0.3 m
        s = synthetic_section((width // 10, width), n_classes=5, seed=200, grain_size=30.0,
                              scribble_fraction=0.004)
        path = directory / "core-photo.png"
        PILImage.fromarray(s.image.transpose(1, 2, 0)).save(path)
        out.append(SampleImage(plug, (path,), "core-photo", (bottom - top) * 1e6 / width,
                               *_write_common(directory, path.stem, s), model="rf",
                               depth_axis="x", top_m=top, bottom_m=bottom))
    if len(sections) > 1:
        plug = sections[1][0]
        s = synthetic_multispectral((side // 2, side // 2), n_bands=5, n_classes=4, seed=300,
                                    scribble_fraction=0.004)
        wavelengths = (450.0, 550.0, 650.0, 850.0, 1600.0)
        files = []
        for b, band in enumerate(s.image):
            files.append(directory / f"multispectral-b{b + 1}.tif")
            tifffile.imwrite(files[-1], band)
        out.append(SampleImage(plug, tuple(files), "multispectral", 4.0,
                               *_write_common(directory, "multispectral", s, MULTISPECTRAL_PHASES), model="mgc",
                               band_names=tuple(f"{w:.0f} nm" for w in wavelengths),
                               wavelengths_nm=wavelengths))
    return out
