"""`mis image add` and `open_image`: stores and catalogue rows agree, always."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage
from sqlalchemy import func, select

from mis.catalogue import models as m
from mis.catalogue.errors import CatalogueError
from mis.imagery.catalogue import add_image, open_image
from mis.imagery.readers import ImageReadError

from tests import factories as f


@pytest.fixture
def plug(session):
    hole = f.drillcore(session, f.deposit(session), length_m=300)
    p = f.plug(session, hole, "P-1", 100, 101)
    session.commit()
    return p


@pytest.fixture
def section(tmp_path) -> Path:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 255, (700, 900, 3), dtype=np.uint8)
    path = tmp_path / "section.tif"
    tifffile.imwrite(path, pixels, tile=(256, 256), photometric="rgb")
    return path


def stores(root: Path) -> list[Path]:
    return sorted(root.rglob("*.ome.zarr")) if root.exists() else []


def test_add_registers_the_image_and_open_image_reads_it(db_url, session, plug, section, tmp_path):
    added = add_image("DH-1/P-1", section, pixel_size_um=0.5, modality="reflected-light",
                      store_root=str(tmp_path / "store"), url=db_url, progress=False)
    assert added.created
    row = session.get(m.Image, added.image_id)
    assert row.shape == [3, 700, 900] and row.chunks == [3, 512, 512] and row.dtype == "uint8"
    assert row.modality_uri.endswith("/reflected-light") and len(row.array_paths) == 2
    array = open_image(added.image_id, url=db_url)
    assert array.dims == ("c", "y", "x") and array.attrs["plug"] == "P-1"
    assert array.chunks is not None  # lazy, dask-backed
    assert float(array.x[1] - array.x[0]) == pytest.approx(0.5)
    np.testing.assert_array_equal(array.values, np.moveaxis(tifffile.imread(section), -1, 0))
    assert open_image(added.image_id, level=1, url=db_url).shape == (3, 350, 450)


def test_adding_the_same_file_twice_is_a_no_op(db_url, session, plug, section, tmp_path):
    root = tmp_path / "store"
    first = add_image(str(plug.id), section, pixel_size_um=0.5, modality="reflected-light",
                      store_root=str(root), url=db_url, progress=False)
    second = add_image("DH-1/P-1", section, pixel_size_um=0.5, modality="reflected-light",
                       store_root=str(root), url=db_url, progress=False)
    assert (second.created, second.image_id) == (False, first.image_id)
    assert session.scalar(select(func.count()).select_from(m.Image)) == 1
    assert len(stores(root)) == 1


def test_unknown_modality_is_refused_with_a_suggestion(db_url, session, plug, section, tmp_path):
    with pytest.raises(CatalogueError, match=r"--modality: unknown term 'reflected-lite'.*did you mean"):
        add_image("DH-1/P-1", section, pixel_size_um=0.5, modality="reflected-lite",
                  store_root=str(tmp_path / "store"), url=db_url, progress=False)
    assert stores(tmp_path / "store") == []
    assert session.scalar(select(func.count()).select_from(m.Image)) == 0


def test_truncated_file_leaves_nothing_behind(db_url, session, plug, section, tmp_path):
    broken = tmp_path / "broken.tif"
    broken.write_bytes(section.read_bytes()[: section.stat().st_size // 3])
    with pytest.raises(ImageReadError, match="broken.tif"):
        add_image("DH-1/P-1", broken, pixel_size_um=0.5, modality="reflected-light",
                  store_root=str(tmp_path / "store"), url=db_url, progress=False)
    root = tmp_path / "store"
    assert not root.exists() or not any(p.name.endswith(".ome.zarr") or ".partial" in p.name
                                        for p in root.rglob("*"))
    assert session.scalar(select(func.count()).select_from(m.Image)) == 0


def test_depth_registration_beyond_the_hole_is_refused(db_url, plug, section, tmp_path):
    with pytest.raises(CatalogueError, match=r"bottom 301.0 m is beyond the end of hole DH-1 \(length_m 300.0\)"):
        add_image("DH-1/P-1", section, pixel_size_um=0.5, modality="core photo", depth_axis="x",
                  top_m=299.0, bottom_m=301.0, store_root=str(tmp_path / "store"), url=db_url,
                  progress=False)


def test_unknown_plug_is_refused(db_url, plug, section, tmp_path):
    with pytest.raises(CatalogueError, match=r"plug 'DH-1/P-9': no such plug"):
        add_image("DH-1/P-9", section, pixel_size_um=0.5, modality="bse",
                  store_root=str(tmp_path / "store"), url=db_url, progress=False)


def test_cli_adds_a_core_photo_with_a_depth_axis(run_mis, session, plug, tmp_path, mis_env):
    photo = tmp_path / "box.png"
    PILImage.fromarray(np.full((60, 400, 3), 128, np.uint8)).save(photo)
    result = run_mis("image", "add", "--plug", "DH-1/P-1", str(photo), "--pixel-size-um", "100",
                     "--modality", "core photo", "--depth-axis", "x", "--top", "100", "--bottom", "101",
                     check=True)
    assert "added" in result.stdout
    row = session.scalars(select(m.Image)).one()
    assert (row.depth_axis, row.depth_top_m, row.depth_bottom_m) == ("x", 100.0, 101.0)
    assert row.store_uri.startswith(mis_env["MIS_HOME"])


def test_stores_never_leave_the_store_root(db_url, session, section, tmp_path):
    """Names registered before names were checked (``..``), and a symbolic link in the
    store: the image goes inside the root, or nowhere."""
    hole = f.drillcore(session, f.deposit(session, ".."), "..", length_m=300)
    f.plug(session, hole, "..", 100, 101)
    session.commit()
    root = tmp_path / "home" / "images"
    added = add_image("../../..", section, pixel_size_um=0.5, modality="reflected-light", name="..",
                      store_root=str(root), url=db_url, progress=False)
    assert Path(added.store_uri).resolve().is_relative_to(root.resolve())
    assert stores(tmp_path) == stores(root) != []
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "x").rename(tmp_path / "moved")
    (root / "x").symlink_to(outside)
    other = tmp_path / "other.tif"
    tifffile.imwrite(other, np.zeros((64, 64, 3), np.uint8), photometric="rgb")
    with pytest.raises(CatalogueError, match="outside"):
        add_image("../../..", other, pixel_size_um=0.7, modality="reflected-light",
                  store_root=str(root), url=db_url, progress=False)
    assert not stores(outside)


def test_mis_delete_image_removes_its_store(run_mis, session, plug, section, mis_env, tmp_path):
    root = Path(mis_env["MIS_HOME"]) / "images"
    added = add_image("DH-1/P-1", section, pixel_size_um=0.5, modality="reflected-light",
                      store_root=str(root), url=mis_env["MIS_DATABASE_URL"], progress=False)
    assert Path(added.store_uri).exists()
    result = run_mis("delete", "image", str(added.image_id), check=True)
    assert "removed image store" in result.stdout and not Path(added.store_uri).exists()
    elsewhere = add_image("DH-1/P-1", section, pixel_size_um=0.6, modality="reflected-light",
                          store_root=str(tmp_path / "mine"), url=mis_env["MIS_DATABASE_URL"], progress=False)
    result = run_mis("delete", "image", str(elsewhere.image_id), check=True)
    assert "kept image store" in result.stdout and Path(elsewhere.store_uri).exists()
