"""Image store: source readers, streaming OME-Zarr import with pyramid, lazy access,
chunk-key mapping. Small images in tmp_path; one slow subprocess test for the memory bound."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from mis.imagery import omezarr
from mis.imagery.access import open_image_pyramid, open_image_store
from mis.imagery.chunks import (
    chunk_index_to_key,
    chunk_key_to_index,
    chunk_key_to_window,
    iter_chunk_windows,
    window_to_chunk_indices,
    window_to_chunk_keys,
)
from mis.imagery.omezarr import (
    ImportedImage,
    downsample2x,
    import_image,
    open_level,
    pyramid_shapes,
    read_metadata,
    read_region,
    sha256_file,
)
from mis.imagery.readers import ImageReadError, open_source, read_image

from tests.omezarr_readers import validate_and_read

RNG = np.random.default_rng(42)


def _rgb(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _grey16(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 4096, (h, w), dtype=np.uint16)


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def _imp(src, dest, **kw) -> ImportedImage:
    kw.setdefault("pixel_size_um", 0.5)
    return import_image(src, dest, progress=False, **kw)


# ------------------------------------------------------------------ readers / round trip


def test_tiled_tiff_rgb_round_trip(tmp_path):
    a = _rgb(1100, 1300)
    src = tmp_path / "tiled.tif"
    tifffile.imwrite(src, a, tile=(256, 256), photometric="rgb", compression="zlib")
    res = _imp(src, tmp_path / "img.ome.zarr")
    assert res.shape == (3, 1100, 1300)
    assert res.dtype == "uint8"
    assert res.chunks == (3, 512, 512)
    assert res.levels == 3 and res.array_paths == ("0", "1", "2")
    assert res.level_shapes == ((3, 1100, 1300), (3, 550, 650), (3, 275, 325))
    assert [b.name for b in res.bands] == ["R", "G", "B"]
    assert res.checksum_sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert res.store_uri == str((tmp_path / "img.ome.zarr").absolute())
    back = read_region(res.store_uri, 0, 0, 0, 1100, 1300)
    np.testing.assert_array_equal(back, np.moveaxis(a, -1, 0))
    assert _leftovers(tmp_path, set()) == ["img.ome.zarr", "tiled.tif"]


def test_striped_tiff_uint16_round_trip(tmp_path):
    a = _grey16(700, 900)
    src = tmp_path / "striped.tif"
    tifffile.imwrite(src, a, rowsperstrip=37, compression="zlib")
    with open_source(src) as s:
        assert s.shape == (1, 700, 900) and s.block_rows == 37
        np.testing.assert_array_equal(s.read_region(100, 200, 50, 60)[0], a[100:150, 200:260])
    res = _imp(src, tmp_path / "s.zarr")
    assert res.dtype == "uint16" and res.levels == 2
    np.testing.assert_array_equal(read_region(res.store_uri, 0, 0, 0, 700, 900)[0], a)
    ch = read_metadata(res.store_uri)["ome"]["omero"]["channels"][0]
    assert ch["window"]["start"] == a.min() and ch["window"]["end"] == a.max()


def test_bigtiff_planar_round_trip(tmp_path):
    a = RNG.integers(0, 256, (3, 600, 520), dtype=np.uint8)
    src = tmp_path / "big.tif"
    tifffile.imwrite(src, a, bigtiff=True, tile=(128, 128), photometric="rgb",
                     planarconfig="separate")
    with open_source(src) as s:
        assert s.format == "bigtiff"
    res = _imp(src, tmp_path / "b.zarr")
    np.testing.assert_array_equal(read_region(res.store_uri, 0, 0, 0, 600, 520), a)


def test_ome_tiff_metadata_used(tmp_path):
    a = RNG.integers(0, 60000, (2, 530, 610), dtype=np.uint16)
    src = tmp_path / "x.ome.tif"
    tifffile.imwrite(
        src, a, tile=(256, 256),
        metadata={"axes": "CYX", "PhysicalSizeX": 0.325, "PhysicalSizeY": 0.325,
                  "Channel": {"Name": ["DAPI", "FITC"]}},
    )
    res = import_image(src, tmp_path / "o.zarr", progress=False)  # pixel size from OME-XML
    assert res.pixel_size_um == pytest.approx(0.325)
    assert [b.name for b in res.bands] == ["DAPI", "FITC"]
    np.testing.assert_array_equal(read_region(res.store_uri, 0, 0, 0, 530, 610), a)


def test_png_rgb_and_grey_round_trip(tmp_path):
    rgb = _rgb(300, 410)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    grey = _grey16(200, 333)
    Image.fromarray(grey).save(tmp_path / "g.png")
    r1 = _imp(tmp_path / "c.png", tmp_path / "c.zarr")
    np.testing.assert_array_equal(read_region(r1.store_uri, 0, 0, 0, 300, 410),
                                  np.moveaxis(rgb, -1, 0))
    r2 = _imp(tmp_path / "g.png", tmp_path / "g.zarr")
    assert r2.shape == (1, 200, 333) and r2.dtype == "uint16"
    assert r2.levels == 1 and r2.bands[0].name == "grey"
    np.testing.assert_array_equal(read_region(r2.store_uri, 0, 0, 0, 200, 333)[0], grey)


def test_jpeg_import(tmp_path):
    rgb = np.zeros((256, 300, 3), np.uint8)
    rgb[:, :150] = (200, 30, 30)
    Image.fromarray(rgb).save(tmp_path / "p.jpg", quality=95)
    res = _imp(tmp_path / "p.jpg", tmp_path / "p.zarr")
    assert res.shape == (3, 256, 300)
    expect = np.moveaxis(np.asarray(Image.open(tmp_path / "p.jpg")), -1, 0)
    np.testing.assert_array_equal(read_region(res.store_uri, 0, 0, 0, 256, 300), expect)
    assert abs(int(expect[0, 10, 10]) - 200) < 6  # lossy, but the right picture


def test_three_file_band_stack(tmp_path):
    bands = [_grey16(260, 700) for _ in range(3)]
    files = []
    for i, (b, n) in enumerate(zip(bands, ["b470", "b550", "b650"], strict=True)):
        f = tmp_path / f"{n}.{'png' if i == 1 else 'tif'}"
        if i == 1:
            Image.fromarray(b).save(f)
        else:
            tifffile.imwrite(f, b, tile=(128, 128))
        files.append(f)
    res = _imp(files, tmp_path / "stack.zarr", wavelengths_nm=[470, 550, 650])
    assert res.shape == (3, 260, 700)
    assert [b.name for b in res.bands] == ["b470", "b550", "b650"]
    assert [b.wavelength_nm for b in res.bands] == [470.0, 550.0, 650.0]
    assert res.source_checksums == tuple(sha256_file(f) for f in files)
    cat = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
    assert res.checksum_sha256 == cat
    np.testing.assert_array_equal(read_region(res.store_uri, 0, 0, 0, 260, 700), np.stack(bands))
    omero = read_metadata(res.store_uri)["ome"]["omero"]
    assert [c["label"] for c in omero["channels"]] == ["b470", "b550", "b650"]
    assert [c["wavelength_nm"] for c in omero["channels"]] == [470.0, 550.0, 650.0]
    assert all(len(c["color"]) == 6 for c in omero["channels"])


def test_band_stack_mismatch_names_the_file(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", _grey16(100, 100))
    tifffile.imwrite(tmp_path / "b.tif", _grey16(100, 120))
    with pytest.raises(ImageReadError, match=r"b\.tif.*size mismatch"):
        _imp([tmp_path / "a.tif", tmp_path / "b.tif"], tmp_path / "x.zarr")
    assert not (tmp_path / "x.zarr").exists()


# ------------------------------------------------------------------ bad input, atomicity


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("kind", ["tiff", "png", "jpeg"])
def test_truncated_file_refused_nothing_left(tmp_path, kind):
    a = _rgb(600, 700)
    src = tmp_path / f"t.{ {'tiff': 'tif', 'png': 'png', 'jpeg': 'jpg'}[kind] }"
    if kind == "tiff":
        tifffile.imwrite(src, a, tile=(256, 256), photometric="rgb")
    else:
        Image.fromarray(a).save(src)
    _truncate(src)
    with pytest.raises(ImageReadError) as err:
        _imp(src, tmp_path / "out.zarr")
    assert str(src) in str(err.value)
    assert "truncated" in str(err.value)
    assert _leftovers(tmp_path, {src.name}) == []


def test_tiff_cut_before_its_directory_refused(tmp_path):
    """libtiff-style files keep the IFD at the end: a cut file loses it."""
    import struct

    src = tmp_path / "cut.tif"
    tifffile.imwrite(src, _rgb(100, 120), photometric="rgb")
    raw = src.read_bytes()
    src.write_bytes(raw[:4] + struct.pack("<I", len(raw) + 4096) + raw[8:])
    with pytest.raises(ImageReadError, match=r"cut\.tif: file is truncated.*IFD"):
        _imp(src, tmp_path / "out.zarr")
    src.write_bytes(raw[:5])
    with pytest.raises(ImageReadError, match=r"cut\.tif: file is truncated.*header"):
        _imp(src, tmp_path / "out.zarr")
    assert _leftovers(tmp_path, {src.name}) == []


def test_corrupted_tile_refused_nothing_left(tmp_path):
    a = _rgb(1200, 800)
    src = tmp_path / "bad.tif"
    tifffile.imwrite(src, a, tile=(256, 256), photometric="rgb", compression="zlib")
    with tifffile.TiffFile(src) as tf:
        off = int(tf.pages[0].dataoffsets[-2])  # a tile of the last tile row
    raw = bytearray(src.read_bytes())
    raw[off + 2 : off + 400] = b"\x00" * 398
    src.write_bytes(bytes(raw))
    with pytest.raises(ImageReadError, match=r"bad\.tif.*cannot decode rows"):
        _imp(src, tmp_path / "out.zarr")  # fails late: level 0 partly written already
    assert _leftovers(tmp_path, {src.name}) == []


@pytest.mark.parametrize("content", [b"", b"hello, not an image" * 10])
def test_not_an_image(tmp_path, content):
    src = tmp_path / "x.tif"
    src.write_bytes(content)
    with pytest.raises(ImageReadError, match=r"x\.tif"):
        _imp(src, tmp_path / "out.zarr")
    with pytest.raises(ImageReadError, match="no such file"):
        _imp(tmp_path / "missing.tif", tmp_path / "out.zarr")
    assert _leftovers(tmp_path, {src.name}) == []


def test_interrupt_leaves_nothing(tmp_path, monkeypatch):
    src = tmp_path / "i.tif"
    tifffile.imwrite(src, _rgb(1600, 1100), tile=(256, 256), photometric="rgb")
    calls = {"n": 0}
    real = omezarr.downsample2x

    def interrupted(block):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(block)

    monkeypatch.setattr(omezarr, "downsample2x", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _imp(src, tmp_path / "out.zarr")
    assert _leftovers(tmp_path, {src.name}) == []


def test_a_hard_killed_import_is_swept_by_the_next(tmp_path):
    """A SIGKILLed import leaves .name.partial-<pid>-*; the next import there removes it
    once that process is gone, and leaves those of live imports alone."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    stale = tmp_path / f".k.zarr.partial-{dead}-0123456789"
    live = tmp_path / f".k.zarr.partial-{os.getpid()}-9876543210"
    for d in (stale, live):
        (d / "0").mkdir(parents=True)
    src = tmp_path / "k.png"
    Image.fromarray(_rgb(40, 50)).save(src)
    _imp(src, tmp_path / "k.zarr")
    assert not stale.exists() and live.exists()


def test_existing_destination_refused_or_overwritten(tmp_path):
    src = tmp_path / "e.png"
    Image.fromarray(_rgb(40, 50)).save(src)
    res = _imp(src, tmp_path / "e.zarr")
    with pytest.raises(FileExistsError):
        _imp(src, tmp_path / "e.zarr")
    Image.fromarray(_rgb(40, 60)).save(src)
    res2 = _imp(src, tmp_path / "e.zarr", overwrite=True)
    assert res2.shape == (3, 40, 60) and res2.store_uri == res.store_uri
    assert open_level(res2.store_uri, 0).shape == (3, 40, 60)
    assert _leftovers(tmp_path, {src.name}) == ["e.zarr"]


def test_fsspec_destination(tmp_path):
    import fsspec

    src = tmp_path / "m.tif"
    a = _rgb(520, 530)
    tifffile.imwrite(src, a, tile=(256, 256), photometric="rgb")
    url = "memory://mis-test/m.ome.zarr"
    res = _imp(src, url)
    assert res.store_uri == url
    fs = fsspec.filesystem("memory")
    assert not [p for p in fs.ls("/mis-test") if "partial" in p]
    np.testing.assert_array_equal(read_region(url, 0, 0, 0, 520, 530), np.moveaxis(a, -1, 0))
    fs.rm("/mis-test", recursive=True)


# ------------------------------------------------------------------ pyramid and metadata


def test_pyramid_shapes():
    assert pyramid_shapes(512, 300) == [(512, 300)]
    assert pyramid_shapes(513, 10) == [(513, 10), (257, 5)]
    assert pyramid_shapes(40000, 40000)[-1] == (313, 313)
    assert len(pyramid_shapes(40000, 40000)) == 8


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
def test_downsample2x_is_rounded_mean(dtype):
    x = RNG.integers(0, 200, (2, 7, 9)).astype(dtype)
    d = downsample2x(x)
    assert d.shape == (2, 4, 5) and d.dtype == x.dtype
    p = np.pad(x.astype(np.float64), ((0, 0), (0, 1), (0, 1)), mode="edge")
    mean = (p[:, 0::2, 0::2] + p[:, 1::2, 0::2] + p[:, 0::2, 1::2] + p[:, 1::2, 1::2]) / 4
    expect = mean if dtype == "float32" else np.floor(mean + 0.5)
    np.testing.assert_allclose(d, expect.astype(dtype))
    assert d[0, 3, 4] == x[0, 6, 8]  # odd corner: the mean of one pixel


def test_pyramid_levels_are_streamed_means(tmp_path):
    a = _grey16(1500, 2100)  # level shapes with odd sizes: 750x1050, 375x525, 188x263
    src = tmp_path / "p.tif"
    tifffile.imwrite(src, a, tile=(256, 256))
    res = _imp(src, tmp_path / "p.zarr", pixel_size_um=0.25)
    assert [s[1:] for s in res.level_shapes] == [(1500, 2100), (750, 1050), (375, 525),
                                                  (188, 263)]
    ref = a[np.newaxis]
    for k in range(1, res.levels):
        ref = downsample2x(ref)
        got = np.asarray(open_level(res.store_uri, k)[:])
        np.testing.assert_array_equal(got, ref)


def test_ome_zarr_metadata(tmp_path):
    src = tmp_path / "m.tif"
    tifffile.imwrite(src, _rgb(1200, 1030), tile=(256, 256), photometric="rgb")
    res = _imp(src, tmp_path / "m.zarr", pixel_size_um=0.4)
    root = Path(res.store_uri)
    group = json.loads((root / "zarr.json").read_text())
    assert group["zarr_format"] == 3 and group["node_type"] == "group"
    ome = group["attributes"]["ome"]
    assert ome["version"] == "0.5"
    (ms,) = ome["multiscales"]
    assert [(a["name"], a["type"], a.get("unit")) for a in ms["axes"]] == [
        ("c", "channel", None), ("y", "space", "micrometer"), ("x", "space", "micrometer")]
    assert [d["path"] for d in ms["datasets"]] == ["0", "1", "2"]
    for k, d in enumerate(ms["datasets"]):
        scale = d["coordinateTransformations"][0]
        assert scale["type"] == "scale"
        assert scale["scale"] == pytest.approx([1.0, 0.4 * 2**k, 0.4 * 2**k])
        trans = d["coordinateTransformations"][1]
        assert trans["type"] == "translation"
        assert trans["translation"] == pytest.approx([0, 0.2 * (2**k - 1), 0.2 * (2**k - 1)])
        arr = json.loads((root / d["path"] / "zarr.json").read_text())
        assert arr["node_type"] == "array" and arr["dimension_names"] == ["c", "y", "x"]
        assert arr["chunk_grid"]["configuration"]["chunk_shape"] == [3, 512, 512]
        assert arr["chunk_key_encoding"] == {"name": "default",
                                             "configuration": {"separator": "/"}}
        blosc = [c for c in arr["codecs"] if c["name"] == "blosc"]
        assert blosc and blosc[0]["configuration"]["cname"] == "zstd"
    assert [c["color"] for c in ome["omero"]["channels"]] == ["FF0000", "00FF00", "0000FF"]
    assert group["attributes"]["mis"]["checksum_sha256"] == res.checksum_sha256
    # the independent validator accepts it, napari's reader finds the whole pyramid
    read = validate_and_read(res.store_uri)
    assert read.image_levels == [(3, 1200, 1030), (3, 600, 515), (3, 300, 258)] and read.labels == {}


def test_sha256_file(tmp_path):
    f = tmp_path / "blob"
    data = os.urandom(3_000_000)
    f.write_bytes(data)
    assert sha256_file(f, bufsize=65536) == hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------ chunks


def test_window_to_chunk_keys_and_back():
    shape, chunks = (3, 1100, 1300), (3, 512, 512)
    assert window_to_chunk_indices((0, 0, 10, 10), chunks, shape) == [(0, 0)]
    assert window_to_chunk_keys((500, 500, 20, 20), chunks, shape) == [
        "c/0/0/0", "c/0/0/1", "c/0/1/0", "c/0/1/1"]
    # clipped at the edges; empty outside
    assert window_to_chunk_keys((1000, 1200, 500, 500), chunks, shape) == [
        "c/0/1/2", "c/0/2/2"]
    assert window_to_chunk_keys((1050, 1030, 500, 500), chunks, shape) == ["c/0/2/2"]
    assert window_to_chunk_keys((1100, 0, 10, 10), chunks, shape) == []
    assert chunk_key_to_window("c/0/2/2", chunks, shape) == (1024, 1024, 76, 276)
    assert chunk_key_to_window("0/c/0/1/0", chunks, shape) == (512, 0, 512, 512)
    assert chunk_key_to_index("0.1.2") == (0, 1, 2)
    # 2-D arrays
    assert window_to_chunk_keys((0, 600, 1, 1), (512, 512), (1100, 1300)) == ["c/0/1"]
    assert chunk_index_to_key((2, 1), chunks, shape) == "c/0/2/1"
    # round trip over the whole grid
    n = 0
    for (iy, ix), win in iter_chunk_windows(chunks, shape):
        key = chunk_index_to_key((iy, ix), chunks, shape)
        assert chunk_key_to_window(key, chunks, shape) == win
        assert window_to_chunk_keys(win, chunks, shape) == [key]
        n += 1
    assert n == 3 * 3
    with pytest.raises(ValueError):
        chunk_key_to_window("c/0/3/0", chunks, shape)
    with pytest.raises(ValueError):
        chunk_key_to_window("zarr.json", chunks, shape)


def test_chunk_keys_name_real_chunk_files(tmp_path):
    src = tmp_path / "k.tif"
    a = _rgb(1100, 1300)
    tifffile.imwrite(src, a, tile=(256, 256), photometric="rgb")
    res = _imp(src, tmp_path / "k.zarr")
    win = (700, 100, 300, 500)
    for key in window_to_chunk_keys(win, res.chunks, res.shape):
        assert (Path(res.store_uri) / res.array_paths[0] / key).is_file()
        y0, x0, h, w = chunk_key_to_window(key, res.chunks, res.shape)
        np.testing.assert_array_equal(
            read_region(res.store_uri, 0, y0, x0, h, w),
            np.moveaxis(a[y0 : y0 + h, x0 : x0 + w], -1, 0))


def test_read_region_reads_only_needed_chunks(tmp_path):
    src = tmp_path / "r.tif"
    a = _rgb(1100, 1300)
    tifffile.imwrite(src, a, tile=(256, 256), photometric="rgb")
    res = _imp(src, tmp_path / "r.zarr")
    (Path(res.store_uri) / "0" / "c/0/2/2").write_bytes(b"garbage")  # far corner chunk
    got = read_region(res.store_uri, 0, 10, 20, 600, 700)  # chunks (0..1, 0..1)
    np.testing.assert_array_equal(got, np.moveaxis(a[10:610, 20:720], -1, 0))
    edge = read_region(open_level(res.store_uri, 1), 1, 500, 600, 512, 512)  # clipped
    assert edge.shape == (3, 50, 50)
    with pytest.raises(Exception):
        read_region(res.store_uri, 0, 1000, 1000, 100, 100)  # touches the garbage chunk


# ------------------------------------------------------------------ xarray access


def test_open_image_store_lazy_with_micrometre_coords(tmp_path):
    import dask.array as da

    src = tmp_path / "x.tif"
    a = _rgb(1100, 1300)
    tifffile.imwrite(src, a, tile=(256, 256), photometric="rgb")
    res = _imp(src, tmp_path / "x.zarr", pixel_size_um=0.5)
    x0 = open_image_store(res.store_uri)
    assert x0.dims == ("c", "y", "x") and x0.shape == (3, 1100, 1300)
    assert isinstance(x0.data, da.Array)
    assert x0.data.chunksize == (3, 512, 512)
    assert list(x0.c.values) == ["R", "G", "B"]
    assert x0.y.attrs["units"] == "micrometer"
    assert x0.y.values[:3] == pytest.approx([0.0, 0.5, 1.0])
    assert x0.attrs["pixel_size_um"] == 0.5 and x0.attrs["array_path"] == "0"
    # select by micrometres, compute only that
    sub = x0.sel(y=slice(100.0, 110.0), x=slice(200.0, 204.5)).compute()
    np.testing.assert_array_equal(sub.values, np.moveaxis(a[200:221, 400:410], -1, 0))
    x1 = open_image_store(res.store_uri, level=1)
    assert x1.attrs["pixel_size_um"] == 1.0
    assert x1.y.values[:2] == pytest.approx([0.25, 1.25])  # centre of 2x2 level-0 pixels
    pyr = open_image_pyramid(res.store_uri)
    assert [p.shape for p in pyr] == list(res.level_shapes)


def test_open_source_read_image_api(tmp_path):
    a = _rgb(64, 80)
    Image.fromarray(a).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), np.moveaxis(a, -1, 0))
    with open_source(tmp_path / "a.png") as s:
        assert s.shape == (3, 64, 80) and s.format == "png"
        bands = list(s.iter_bands(50))
        assert [y for y, _ in bands] == [0, 50] and bands[1][1].shape == (3, 14, 80)


# ------------------------------------------------------------------ memory bound (slow)

_GEN = textwrap.dedent("""
    import sys, numpy as np, tifffile
    path, n = sys.argv[1], int(sys.argv[2])
    T = 512
    base = np.random.default_rng(0).integers(0, 200, (T, T, 3), dtype=np.uint8)
    def tiles():
        for ty in range(0, n, T):
            for tx in range(0, n, T):
                yield base + np.uint8((ty // T + tx // T) % 50)
    tifffile.imwrite(path, data=tiles(), shape=(n, n, 3), dtype="uint8", tile=(T, T),
                     photometric="rgb", bigtiff=True)
""")

# Linux carries a parent's RSS high-water mark into the ru_maxrss of a process it spawns;
# a small launcher in between keeps the worker's figure clean, and reports it again as
# its own RUSAGE_CHILDREN.
_LAUNCHER = textwrap.dedent("""
    import json, resource, subprocess, sys
    out = subprocess.run(sys.argv[1:], check=True, capture_output=True, text=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["children_maxrss_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps(res))
""")

_IMPORT = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path
    from mis.imagery.omezarr import import_image
    if sys.argv[3] == "import":
        res = import_image(Path(sys.argv[1]), sys.argv[2], pixel_size_um=1.0, progress=False)
        levels = res.levels
    else:
        levels = 0   # baseline: the same imports, no work
    print(json.dumps({"maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "levels": levels}))
""")


@pytest.mark.slow
def test_import_peak_memory_is_bounded(tmp_path):
    """Peak RSS of an import does not grow with the image: it is bounded by a few
    512-row bands (proportional to the width) plus the interpreter.

    Here 12,000 x 12,000 RGB (432 MB) must stay under the baseline + 20 bands
    (20 x 512 x 12,000 x 3 B = 369 MB; measured ~12) and under the image size itself.
    At 40,000 x 40,000 RGB (4.8 GB) the same bound is baseline + 20 x 61 MB ~ 1.3 GB
    < 2 GiB; bench/bench_image_import.py measures that size.
    """
    n = 12_000
    src = tmp_path / "big.tif"
    subprocess.run([sys.executable, "-c", _GEN, str(src), str(n)], check=True, timeout=120)
    assert src.stat().st_size > n * n * 3

    def child(mode: str) -> dict:
        out = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, sys.executable, "-c", _IMPORT, str(src),
             str(tmp_path / "big.zarr"), mode],
            check=True, timeout=120, capture_output=True, text=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    base = child("baseline")["maxrss_kib"] * 1024
    run = child("import")
    peak = run["maxrss_kib"] * 1024
    assert run["levels"] == 6
    image_bytes = n * n * 3
    band_bytes = 512 * n * 3
    print(f"baseline {base / 2**20:.0f} MiB, import peak {peak / 2**20:.0f} MiB, "
          f"image {image_bytes / 2**20:.0f} MiB")
    assert peak - base < 20 * band_bytes
    assert peak < image_bytes
    assert run["children_maxrss_kib"] == run["maxrss_kib"]  # RUSAGE_CHILDREN agrees
    arr = open_level(tmp_path / "big.zarr", 0)
    np.testing.assert_array_equal(np.asarray(arr[:, 11_900:, 11_900:]).shape, (3, 100, 100))


def _png_declaring(path: Path, width: int, height: int) -> Path:
    """A small, well-formed PNG head that declares ``width x height`` RGB pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(b"\x00" * (1 + 3 * width) * 64)  # the first rows only: the rest is missing
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


def test_formats_decoded_whole_have_a_pixel_budget(tmp_path):
    """A PNG (or BMP) whose header declares 50,000^2 px is refused from its header,
    without allocating its 7 GB; Pillow's own bomb limit is left as it was."""
    import resource

    png = _png_declaring(tmp_path / "bomb.png", 50_000, 50_000)
    bmp = tmp_path / "bomb.bmp"
    Image.new("RGB", (8, 8)).save(bmp)
    raw = bytearray(bmp.read_bytes())
    raw[18:26] = (50_000).to_bytes(4, "little", signed=True) + (50_000).to_bytes(4, "little", signed=True)
    bmp.write_bytes(bytes(raw))
    limit = Image.MAX_IMAGE_PIXELS
    for src in (png, bmp):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with pytest.raises(ImageReadError, match="budget"):
            open_source(src)
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB: decoding would add GBs
        assert grown < 256 * 1024, f"peak memory grew by {grown / 1024:.0f} MiB to refuse {src.name}"
    assert Image.MAX_IMAGE_PIXELS == limit
    assert open_source(_png_declaring(tmp_path / "ok.png", 40, 30)).shape == (3, 30, 40)  # within budget: read
