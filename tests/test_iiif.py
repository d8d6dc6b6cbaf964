"""IIIF Image API 3.0 service, Presentation 3 manifests and the plug viewer.

Pure parsing/planning tests need nothing; rendering tests use small OME-Zarr stores made by
``import_image``; the HTTP tests register the images in a real test catalogue and talk to
the routes over real HTTP (uvicorn on a free 127.0.0.1 port), with the ``piffle`` IIIF
client library and httpx.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image
from sqlalchemy import select
from zarr.storage import LocalStore, WrapperStore

from mis.catalogue import models as m
from mis.imagery import iiif
from mis.imagery.chunks import window_to_chunk_keys
from mis.imagery.iiif import IIIFError, Region
from mis.imagery.iiif_routes import STATIC_DIR, create_iiif_app
from mis.imagery.omezarr import ImportedImage, import_image, read_region
from tests import factories

RNG = np.random.default_rng(7)
H, W = 1500, 2100  # 4 levels: 1500x2100, 750x1050, 375x525, 188x263


def _smooth_rgb(h: int, w: int) -> np.ndarray:
    """A textured RGB image (gradients + noise): resampling errors show, jpeg works."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], axis=-1)
    return np.clip(base + RNG.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def rgb(tmp_path_factory) -> ImportedImage:
    d = tmp_path_factory.mktemp("iiif-rgb")
    src = d / "section.tif"
    tifffile.imwrite(src, _smooth_rgb(H, W), tile=(256, 256), photometric="rgb")
    return import_image(src, d / "section.ome.zarr", pixel_size_um=0.5, progress=False)


@pytest.fixture(scope="module")
def ms16(tmp_path_factory) -> ImportedImage:
    """A 5-band uint16 multispectral stack (700 x 900 px; 2 levels)."""
    d = tmp_path_factory.mktemp("iiif-ms")
    files = []
    for i in range(5):
        band = (RNG.gamma(2.0, 300 + 200 * i, (700, 900)) + 100 * i).clip(0, 65535)
        p = d / f"band{i}.tif"
        tifffile.imwrite(p, band.astype(np.uint16))
        files.append(p)
    return import_image(files, d / "ms.ome.zarr", pixel_size_um=2.0, progress=False,
                        band_names=["b450", "b550", "b650", "b750", "b850"],
                        wavelengths_nm=[450, 550, 650, 750, 850])


class CountingStore(WrapperStore):
    """A zarr store that records every key read (to prove which chunks a request reads)."""

    def __init__(self, store):
        super().__init__(store)
        self.keys: list[str] = []

    async def get(self, key, prototype, byte_range=None):
        self.keys.append(key)
        return await self._store.get(key, prototype, byte_range)


def _counting_pyramid(img: ImportedImage) -> tuple[iiif.Pyramid, CountingStore]:
    store = CountingStore(LocalStore(img.store_uri, read_only=True))
    group = zarr.open_group(store, mode="r", zarr_format=3)
    pyr = iiif.Pyramid([group[p] for p in img.array_paths], [b.name for b in img.bands])
    store.keys.clear()
    return pyr, store


def _decode(body: bytes) -> np.ndarray:
    im = Image.open(io.BytesIO(body))
    im.load()
    a = np.asarray(im)
    return np.moveaxis(a, -1, 0) if a.ndim == 3 else a[None]


# ------------------------------------------------------------------ parsing (pure)


def test_parse_region():
    assert iiif.parse_region("full", 300, 200) == Region(0, 0, 300, 200)
    assert iiif.parse_region("square", 300, 200) == Region(50, 0, 200, 200)
    assert iiif.parse_region("square", 200, 300) == Region(0, 50, 200, 200)
    assert iiif.parse_region("10,20,30,40", 300, 200) == Region(10, 20, 30, 40)
    # clipped at the right/bottom edges
    assert iiif.parse_region("250,150,100,100", 300, 200) == Region(250, 150, 50, 50)
    assert iiif.parse_region("pct:10,50,50,50", 300, 200) == Region(30, 100, 150, 100)
    for bad in ["", "0,0,0,10", "0,0,10,0", "300,0,10,10", "0,200,10,10", "1,2,3",
                "a,b,c,d", "-1,0,10,10", "1.5,0,10,10", "pct:0,0,0,10", "pct:x,0,1,1",
                "Full", "squares"]:
        with pytest.raises(IIIFError) as e:
            iiif.parse_region(bad, 300, 200)
        assert e.value.status == 400, bad
        assert "region" in e.value.message


def test_parse_size_and_upscaling():
    lim = iiif.Limits(max_width=1000, max_height=1000, max_area=400_000)
    assert iiif.parse_size("max", 300, 200, lim) == (300, 200)
    assert iiif.parse_size("150,", 300, 200, lim) == (150, 100)
    assert iiif.parse_size(",100", 300, 200, lim) == (150, 100)
    assert iiif.parse_size("100,100", 300, 200, lim) == (100, 100)
    assert iiif.parse_size("!100,100", 300, 200, lim) == (100, 67)
    assert iiif.parse_size("pct:50", 300, 200, lim) == (150, 100)
    # upscaling only with ^ (Image API 3.0)
    for bad in ["301,", ",201", "301,200", "pct:101", "^"]:
        with pytest.raises(IIIFError) as e:
            iiif.parse_size(bad, 300, 200, lim)
        assert e.value.status == 400, bad
    assert iiif.parse_size("^600,", 300, 200, lim) == (600, 400)
    assert iiif.parse_size("^pct:200", 300, 200, lim) == (600, 400)
    assert iiif.parse_size("!600,600", 300, 200, lim) == (300, 200)  # confined, no ^: <= 100 %
    assert iiif.parse_size("^!600,600", 300, 200, lim) == (600, 400)
    assert iiif.parse_size("^max", 300, 200, lim) == (774, 516)  # maxArea bound
    # limits: max shrinks to maxArea, explicit sizes beyond it are refused
    assert iiif.parse_size("max", 3000, 2000, lim) == (774, 516)
    with pytest.raises(IIIFError, match="maxArea"):
        iiif.parse_size("1000,", 3000, 2000, lim)
    for bad in ["0,", ",0", "0,0", ",", "full", "10", "a,", "!10,", "pct:0", "pct:", "w,h",
                "-5,", "10.5,"]:
        with pytest.raises(IIIFError) as e:
            iiif.parse_size(bad, 300, 200, lim)
        assert e.value.status == 400, bad


def test_parse_rotation_quality_format_identifier():
    assert iiif.parse_rotation("0") == 0.0
    assert iiif.parse_rotation("0.0") == 0.0
    for unsupported in ["90", "180", "22.5", "!0", "!90"]:
        with pytest.raises(IIIFError) as e:
            iiif.parse_rotation(unsupported)
        assert e.value.status == 501
    for bad in ["", "abc", "-90", "361", "!", "1e2"]:
        with pytest.raises(IIIFError) as e:
            iiif.parse_rotation(bad)
        assert e.value.status == 400
    fmts = ["jpg", "png"]
    assert iiif.parse_quality_format("default.jpg", fmts) == ("default", "jpg")
    assert iiif.parse_quality_format("gray.png", fmts) == ("gray", "png")
    for bad in ["default", "default.", ".jpg", "best.jpg", "bitonal.jpg", "default.tif",
                "default.JPG"]:
        with pytest.raises(IIIFError) as e:
            iiif.parse_quality_format(bad, fmts)
        assert e.value.status == 400
    assert iiif.parse_identifier("12") == (12, None)
    assert iiif.parse_identifier("12;bands=4,3,2") == (12, "4,3,2")
    for unknown in ["abc", "0", "-1", "1.5", "12;x=1"]:
        with pytest.raises(IIIFError) as e:
            iiif.parse_identifier(unknown)
        assert e.value.status == 404


def test_parse_bands():
    names = ["b450", "b550", "b650", "b750", "b850"]
    assert iiif.parse_bands(None, names) == (0, 1, 2)
    assert iiif.parse_bands("3,2,1", names) == (2, 1, 0)
    assert iiif.parse_bands("b850,b650,b450", names) == (4, 2, 0)
    assert iiif.parse_bands("5", names) == (4,)
    assert iiif.parse_bands(None, ["grey"]) == (0,)
    assert iiif.parse_bands(None, ["a", "b"]) == (0,)
    for bad in ["1,2", "0,1,2", "6,1,2", "x,1,2", "1,2,3,4"]:
        with pytest.raises(IIIFError) as e:
            iiif.parse_bands(bad, names)
        assert e.value.status == 400


def test_plan_chooses_smallest_sufficient_level():
    shapes = iiif.level_shapes_for(H, W, 4)
    assert shapes == [(1500, 2100), (750, 1050), (375, 525), (188, 263)]
    # a viewer tile at scale factor 2^k is level k's chunk, unchanged
    for k in range(4):
        f = 1 << k
        p = iiif.plan_read(Region(0, 0, min(W, 512 * f), min(H, 512 * f)),
                           min(512, shapes[k][1]), min(512, shapes[k][0]), shapes)
        assert p.level == k and not p.resample
    # edge tile at scale factor 2: region 1024..2100 (odd remainder) -> level 1 window
    p = iiif.plan_read(Region(1024, 1024, 1076, 476), 538, 238, shapes)
    assert (p.level, p.window, p.resample) == (1, (512, 512, 238, 538), False)
    # every `sizes` entry is a level read whole
    for k, (lh, lw) in enumerate(shapes):
        p = iiif.plan_read(Region(0, 0, W, H), lw, lh, shapes)
        assert (p.level, p.window, p.resample) == (k, (0, 0, lh, lw), False)
    # in-between sizes: the smallest level still >= the output, then resampled down
    p = iiif.plan_read(Region(0, 0, W, H), 600, 429, shapes)
    assert p.level == 1 and p.resample and p.window == (0, 0, 750, 1050)
    p = iiif.plan_read(Region(0, 0, W, H), 1051, 751, shapes)
    assert p.level == 0
    p = iiif.plan_read(Region(100, 100, 400, 400), 200, 200, shapes)
    assert (p.level, p.window, p.resample) == (1, (50, 50, 200, 200), False)
    p = iiif.plan_read(Region(101, 101, 400, 400), 200, 200, shapes)
    assert p.level == 1 and p.window == (50, 50, 201, 201) and p.resample
    assert p.box == (0.5, 0.5, 200.5, 200.5)
    # upscaling reads level 0
    assert iiif.plan_read(Region(0, 0, 100, 100), 400, 400, shapes).level == 0


# ------------------------------------------------------------------ rendering (zarr, no HTTP)


def test_tile_reads_only_the_needed_chunks_of_the_chosen_level(rgb):
    pyr, store = _counting_pyramid(rgb)
    cases = [  # region, size -> level
        ("1024,512,512,512", "512,", 0),
        ("1024,0,1024,1024", "512,", 1),
        ("0,0,2048,2048", "256,", 3),  # clipped to 2048 x 1500, then 1/8
        ("full", "600,", 1),
        ("300,700,900,500", "450,", 1),
        ("full", "max", 0),
    ]
    for region, size, level in cases:
        req = iiif.parse_image_request(region, size, "0", "default.png", W, H, formats=["png"])
        store.keys.clear()
        out = pyr.render(req)
        assert out.plan.level == level, (region, size)
        y0, x0, h, w = out.plan.window
        expect = {f"{level}/{k}" for k in window_to_chunk_keys(
            (y0, x0, h, w), rgb.chunks, rgb.level_shapes[level])}
        chunk_reads = {k for k in store.keys if "/c/" in k}
        assert chunk_reads == expect, (region, size)
        assert _decode(out.body).shape == (3, req.height, req.width)


def test_png_tile_equals_zarr_region_at_each_level(rgb):
    pyr, _ = _counting_pyramid(rgb)
    # level 0: a region across chunk boundaries, unscaled
    req = iiif.parse_image_request("500,300,700,600", "max", "0", "default.png", W, H,
                                   formats=["png"])
    np.testing.assert_array_equal(_decode(pyr.render(req).body),
                                  read_region(rgb.store_uri, 0, 300, 500, 600, 700))
    # scaled requests are the pyramid level's own pixels (2x2 means), not resampled
    req = iiif.parse_image_request("1024,0,1024,1024", "512,", "0", "default.png", W, H,
                                   formats=["png"])
    np.testing.assert_array_equal(_decode(pyr.render(req).body),
                                  read_region(rgb.store_uri, 1, 0, 512, 512, 512))
    for k in (2, 3):
        lh, lw = rgb.level_shapes[k][1:]
        req = iiif.parse_image_request("full", f"{lw},", "0", "default.png", W, H,
                                       formats=["png"])
        np.testing.assert_array_equal(_decode(pyr.render(req).body),
                                      read_region(rgb.store_uri, k, 0, 0, lh, lw))
    # an in-between size is the next larger level resampled: close to the reference
    req = iiif.parse_image_request("full", "700,", "0", "default.png", W, H, formats=["png"])
    got = _decode(pyr.render(req).body).astype(float)
    lvl1 = read_region(rgb.store_uri, 1, 0, 0, 750, 1050)
    ref = np.asarray(Image.fromarray(np.moveaxis(lvl1, 0, -1)).resize((700, 500),
                                                                     Image.Resampling.BOX))
    assert got.shape == (3, 500, 700)
    assert np.abs(got - np.moveaxis(ref, -1, 0)).mean() < 6.0


def test_quality_and_formats(rgb):
    pyr, _ = _counting_pyramid(rgb)
    tile = read_region(rgb.store_uri, 2, 0, 0, 375, 525)
    req = iiif.parse_image_request("full", "525,", "0", "gray.png", W, H, formats=["png"])
    grey = _decode(pyr.render(req).body)
    assert grey.shape == (1, 375, 525)
    want = np.asarray(Image.fromarray(np.moveaxis(tile, 0, -1)).convert("L"))
    np.testing.assert_array_equal(grey[0], want)
    req = iiif.parse_image_request("full", "525,", "0", "color.jpg", W, H, formats=["jpg"])
    out = pyr.render(req)
    assert out.media_type == "image/jpeg" and out.body[:3] == b"\xff\xd8\xff"
    # jpeg: lossy but close
    assert np.abs(_decode(out.body).astype(float) - tile).mean() < 8


def test_multispectral_16bit_band_mapping_and_stretch(ms16):
    pyr, store = _counting_pyramid(ms16)
    assert pyr.dtype == np.uint16 and pyr.n_bands == 5
    lvl0 = read_region(ms16.store_uri, 0, 0, 0, 700, 900)
    top = read_region(ms16.store_uri, 1, 0, 0, 350, 450)

    def expect(band, data):
        lo, hi = np.percentile(top[band].astype(float), iiif.STRETCH_PERCENTILES)
        v = (data.astype(np.float32) - np.float32(lo)) * np.float32(255 / (hi - lo))
        return np.clip(v + 0.5, 0, 255).astype(np.uint8)

    req = iiif.parse_image_request("0,0,512,512", "max", "0", "default.png", 900, 700,
                                   formats=["png"])
    got = _decode(pyr.render(req, iiif.parse_bands("3,2,1", pyr.band_names)).body)
    for i, b in enumerate((2, 1, 0)):
        np.testing.assert_array_equal(got[i], expect(b, lvl0[b, :512, :512]))
    # the stretch is per image (coarsest level), so the same band looks the same at every
    # level: no seams between tiles or zoom levels
    req = iiif.parse_image_request("full", "450,", "0", "default.png", 900, 700,
                                   formats=["png"])
    got = _decode(pyr.render(req, (4,)).body)
    assert got.shape == (1, 350, 450)
    np.testing.assert_array_equal(got[0], expect(4, top[4]))
    sat = (got == 255).mean() + (got == 0).mean()
    assert 0.002 < sat < 0.05  # ~1 % clipped by the 0.5/99.5 percentile stretch
    # default display of 5 bands: the first three as RGB
    req = iiif.parse_image_request("full", "450,", "0", "default.png", 900, 700,
                                   formats=["png"])
    assert _decode(pyr.render(req).body).shape == (3, 350, 450)
    # color needs 3 bands
    req = iiif.parse_image_request("full", "450,", "0", "color.png", 900, 700, formats=["png"])
    with pytest.raises(IIIFError) as e:
        pyr.render(req, (0,))
    assert e.value.status == 400


def test_info_json_document():
    doc = iiif.info_json("http://x/iiif/3/7", W, H, 4, formats=["jpg", "png"])
    assert doc["@context"] == "http://iiif.io/api/image/3/context.json"
    assert (doc["id"], doc["type"], doc["protocol"], doc["profile"]) == (
        "http://x/iiif/3/7", "ImageService3", "http://iiif.io/api/image", "level1")
    assert (doc["width"], doc["height"]) == (W, H)
    assert doc["tiles"] == [{"width": 512, "height": 512, "scaleFactors": [1, 2, 4, 8]}]
    assert doc["sizes"][0] == {"width": 263, "height": 188}
    assert {"width": 2100, "height": 1500} in doc["sizes"]
    assert doc["extraFormats"] == ["png"]
    assert doc["extraQualities"] == ["color", "gray"]


# ------------------------------------------------------------------ catalogue + HTTP


def _image_row(session, plug: m.Plug, img: ImportedImage, name: str) -> m.Image:
    modality = session.execute(
        select(m.Concept.uri).where(m.Concept.scheme == "image-modality").order_by(m.Concept.uri)
    ).scalars().first() or factories.SAMPLE_TYPE
    row = m.Image(
        plug_id=plug.id, name=name, store_uri=img.store_uri, array_paths=list(img.array_paths),
        shape=list(img.shape), chunks=list(img.chunks), dtype=img.dtype,
        pixel_size_um=img.pixel_size_um, modality_uri=modality,
        band_names=[b.name for b in img.bands],
        band_wavelengths_nm=[b.wavelength_nm for b in img.bands]
        if all(b.wavelength_nm for b in img.bands) else None,
        checksum_sha256=img.checksum_sha256,
    )
    session.add(row)
    session.flush()
    return row


@pytest.fixture
def catalogue(session, rgb, ms16) -> dict[str, int]:
    dep = factories.deposit(session)
    hole = factories.drillcore(session, dep, name="DH-7", length_m=1000.0)
    plug = factories.plug(session, hole, name="P-003", from_m=698.41, to_m=699.02)
    empty = factories.plug(session, hole, name="P-004", from_m=700.0, to_m=700.2)
    a = _image_row(session, plug, rgb, "section RL")
    b = _image_row(session, plug, ms16, "multispectral")
    ids = {"plug": plug.id, "empty_plug": empty.id, "rgb": a.id, "ms": b.id}
    session.commit()
    return ids


@contextmanager
def serve(app) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free 127.0.0.1 port in a thread."""
    import uvicorn

    # proto IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on accepted sockets of a
    # TCP-proto listener (else Nagle + delayed ACK add ~40 ms to every keep-alive request)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_real_http_with_piffle_client(db_url, catalogue, rgb, caplog):
    """A real IIIF client (piffle) over real HTTP: info.json, tiles, manifest."""
    import httpx
    from piffle.image import IIIFImageClient
    from piffle.load_iiif import load_iiif_image, load_iiif_presentation

    with serve(create_iiif_app(db_url)) as base, httpx.Client(timeout=30) as http:
        endpoint = f"{base}/iiif/3"
        img = IIIFImageClient(endpoint, str(catalogue["rgb"]))
        # info.json through piffle (parsed as an Image API 3 document, nothing missing)
        info = load_iiif_image(img.info(), 3)
        assert "missing" not in caplog.text
        assert (info.width, info.height, info.profile, info.type) == (W, H, "level1",
                                                                       "ImageService3")
        assert info.id == f"{endpoint}/{catalogue['rgb']}"
        assert info.tiles[0]["scaleFactors"] == [1, 2, 4, 8]
        assert img.image_width == W  # piffle's own info.json fetch

        # every tile of level 1 as a viewer would ask (scale factor 2), png: lossless
        sf, t = 2, 512
        lh, lw = rgb.level_shapes[1][1:]
        for ty in range(0, H, t * sf):
            for tx in range(0, W, t * sf):
                rw, rh = min(t * sf, W - tx), min(t * sf, H - ty)
                url = str(img.region(x=tx, y=ty, width=rw, height=rh)
                          .size(width=-(-rw // sf), height=None).format("png"))
                # piffle URL round trip: what we send is what the client library parses
                parsed = IIIFImageClient.init_from_url(url)
                assert str(parsed.region) == f"{tx},{ty},{rw},{rh}"
                r = http.get(url)
                assert r.status_code == 200, (url, r.text)
                assert r.headers["content-type"] == "image/png"
                assert r.headers["access-control-allow-origin"] == "*"
                want = read_region(rgb.store_uri, 1, ty // sf, tx // sf, t, t)
                np.testing.assert_array_equal(_decode(r.content), want)
        assert (lh, lw) == (750, 1050)

        # a jpg at a sizeByH, sizeByWh and the default rotation/quality
        r = http.get(str(img.size(height=300).format("jpg")))
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(r.content)).size == (420, 300)
        r = http.get(str(img.region(x=0, y=0, width=800, height=800).size(width=100,
                                                                           height=50)))
        assert Image.open(io.BytesIO(r.content)).size == (100, 50)

        # the plug's Presentation 3 manifest, read by piffle
        murl = f"{base}/iiif/presentation/plug/{catalogue['plug']}/manifest.json"
        man = load_iiif_presentation(murl, 3)
        assert type(man).__name__ == "Manifest3"
        assert man.label == {"none": ["DH-7 / P-003"]}
        assert len(man.items) == 2
        canvas = man.items[0]
        assert type(canvas).__name__ == "Canvas3"
        assert (canvas.type, canvas.width, canvas.height) == ("Canvas", W, H)
        assert canvas.id.endswith(f"/canvas/{catalogue['rgb']}")
        page = canvas.items[0]
        assert type(page).__name__ == "AnnotationPage3"
        anno = page.items[0]
        assert (anno.motivation, anno.target) == ("painting", canvas.id)
        body = anno.body
        assert body["service"][0] == {"id": info.id, "type": "ImageService3",
                                      "profile": "level1"}
        # the painting body and thumbnail URLs answer
        assert http.get(body["id"]).status_code == 200
        thumb = http.get(canvas.thumbnail[0]["id"])
        assert Image.open(io.BytesIO(thumb.content)).size == (263, 188)


@pytest.fixture
def client(db_url, catalogue) -> Iterator:
    """An httpx client on the service over real HTTP (uvicorn)."""
    import httpx

    with serve(create_iiif_app(db_url)) as base, httpx.Client(base_url=base, timeout=30) as c:
        yield c


def test_http_errors_cors_redirect_and_bands(client, catalogue):
    rid, mid = catalogue["rgb"], catalogue["ms"]
    cases = {
        f"/iiif/3/{rid}/0,0,0,10/max/0/default.jpg": 400,
        f"/iiif/3/{rid}/5000,0,10,10/max/0/default.jpg": 400,
        f"/iiif/3/{rid}/full/4000,/0/default.jpg": 400,  # upscaling without ^
        f"/iiif/3/{rid}/full/full/0/default.jpg": 400,  # 'full' size is gone in 3.0
        f"/iiif/3/{rid}/full/max/0/default.gif": 400,
        f"/iiif/3/{rid}/full/max/0/bitonal.jpg": 400,
        f"/iiif/3/{rid}/full/max/0/default": 400,
        f"/iiif/3/{rid}/full/max/abc/default.jpg": 400,
        f"/iiif/3/{rid}/full/max/90/default.jpg": 501,
        f"/iiif/3/{rid}/full/max/!0/default.jpg": 501,
        f"/iiif/3/{rid}/full/max/0/default.jpg?bands=9,1,2": 400,
        f"/iiif/3/{rid};bands=1/full/max/0/default.jpg?bands=2": 400,
        "/iiif/3/999999/full/max/0/default.jpg": 404,
        "/iiif/3/999999/info.json": 404,
        "/iiif/3/nope/info.json": 404,
        "/iiif/presentation/plug/999999/manifest.json": 404,
        f"/iiif/presentation/plug/{catalogue['empty_plug']}/manifest.json": 404,
        "/viewer/plug/999999": 404,
        f"/iiif/3/{rid}/full/max/0": 400,  # a segment short
        f"/iiif/3/{rid}/full/max/0/default.jpg/more": 400,
    }
    for url, status in cases.items():
        r = client.get(url)
        assert r.status_code == status, (url, r.status_code, r.text)
        assert r.headers["access-control-allow-origin"] == "*", url
        assert r.text.strip() and "Traceback" not in r.text, url
    # malformed syntax is a 400 even for an unknown image
    assert client.get("/iiif/3/999999/full/max/0/default.gif").status_code == 400

    r = client.get(f"/iiif/3/{rid}")
    assert r.status_code == 303 and r.headers["location"].endswith(f"/iiif/3/{rid}/info.json")
    r = client.head(f"/iiif/3/{rid}/info.json")
    assert r.status_code == 200 and r.content == b""
    r = client.options(f"/iiif/3/{rid}/info.json")
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == "*"
    r = client.get(f"/iiif/3/{rid}/info.json", headers={"Accept": "application/ld+json"})
    assert r.headers["content-type"].startswith("application/ld+json")
    assert "level1.json" in r.headers["link"]

    # bands: ?bands on info.json moves into the identifier of the service id
    info = client.get(f"/iiif/3/{mid}/info.json?bands=4,3,2").json()
    assert info["id"].endswith(f"/iiif/3/{mid};bands=4,3,2")
    assert info["extraQualities"] == ["color", "gray"]
    grey = client.get(f"/iiif/3/{mid}/info.json?bands=b850").json()
    assert grey["extraQualities"] == ["gray"]
    via_id = client.get(f"/iiif/3/{mid};bands=4,3,2/0,0,512,512/max/0/default.png")
    via_q = client.get(f"/iiif/3/{mid}/0,0,512,512/max/0/default.png?bands=4,3,2")
    assert via_id.status_code == via_q.status_code == 200
    assert via_id.content == via_q.content
    assert _decode(via_id.content).shape == (3, 512, 512)
    one = client.get(f"/iiif/3/{mid}/0,0,512,512/max/0/default.png?bands=5")
    assert _decode(one.content).shape == (1, 512, 512)


def test_viewer_page_and_vendored_openseadragon(client, catalogue):
    r = client.get(f"/viewer/plug/{catalogue['plug']}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "DH-7 / P-003" in page
    assert "/static/openseadragon/openseadragon.min.js" in page
    assert f"/iiif/3/{catalogue['rgb']}/info.json" in page
    assert f"/iiif/3/{catalogue['ms']}/info.json" in page
    assert "cdn" not in page.lower() and "unpkg" not in page.lower()
    js = client.get("/static/openseadragon/openseadragon.min.js")
    assert js.status_code == 200 and b"OpenSeadragon" in js.content[:2000]
    assert client.get("/static/openseadragon/images/home_rest.png").status_code == 200
    assert (STATIC_DIR / "LICENSE.txt").read_text().count("OpenSeadragon") >= 1
    # the viewer passes a band selection on to the image services
    r = client.get(f"/viewer/plug/{catalogue['plug']}?bands=1")
    assert f"/iiif/3/{catalogue['ms']};bands=1/info.json" in r.text


def test_catalogue_down_is_503_not_500():
    import httpx

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_iiif_app(f"postgresql+psycopg://nobody@127.0.0.1:{port}/nothing")
    with serve(app) as base:
        r = httpx.get(f"{base}/iiif/3/1/full/max/0/default.jpg", timeout=30)
    assert r.status_code == 503 and "catalogue" in r.text
    assert r.headers["access-control-allow-origin"] == "*"


def test_upscaling_is_capped_and_numbers_are_bounded_ascii():
    """Memory and overflow: ``^max`` on a small image scales by at most ``max_upscale``,
    an explicit size beyond it is a 400; numbers of 10+ digits (309-digit floats overflow,
    4,300-digit ints hit Python's conversion limit) and non-ASCII digits are 400s."""
    lim = iiif.Limits()  # the service's defaults: 8192 px, 4096^2 px, 4x upscaling
    assert iiif.parse_size("^max", 320, 320, lim) == (1280, 1280)
    with pytest.raises(IIIFError, match="up more than 4 times"):
        iiif.parse_size("^4096,", 320, 320, lim)
    assert iiif.parse_size("^1280,", 320, 320, lim) == (1280, 1280)
    huge = "9" * 400
    for region, size in [(f"0,0,{huge},10", "max"), (f"pct:0,0,{huge},1", "max"), ("full", f"{huge},"),
                         ("full", f"pct:{huge}"), ("full", f"^pct:1{'0' * 320}"), ("full", f"!{huge},5"),
                         ("full", "٣٠,"), (f"0,0,{'1' * 5000},1", "max"), ("full", "²,")]:
        with pytest.raises(IIIFError) as e:
            iiif.parse_image_request(region, size, "0", "default.png", 320, 320, lim, ["png"])
        assert e.value.status == 400, (region[:20], size[:20])
    for ident in ["1" * 400, "٣", "²"]:
        with pytest.raises(IIIFError) as e:
            iiif.parse_identifier(ident)
        assert e.value.status == 404
    with pytest.raises(IIIFError) as e:
        iiif.parse_rotation("9" * 400)
    assert e.value.status == 400


def test_concurrent_renders_are_capped(client, catalogue, monkeypatch):
    """More clients than MAX_RENDERS at once: all answered, never more renders at a time."""
    from concurrent.futures import ThreadPoolExecutor

    from mis.imagery.iiif_routes import MAX_RENDERS

    lock, now, peak = threading.Lock(), [0], [0]
    render = iiif.Pyramid.render

    def counted(self, *args, **kwargs):
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        try:
            time.sleep(0.05)  # long enough for every request to be waiting at once
            return render(self, *args, **kwargs)
        finally:
            with lock:
                now[0] -= 1

    monkeypatch.setattr(iiif.Pyramid, "render", counted)
    path = f"/iiif/3/{catalogue['rgb']}/full/^max/0/default.png"
    with ThreadPoolExecutor(4 * MAX_RENDERS) as pool:
        codes = list(pool.map(lambda _: client.get(path).status_code, range(4 * MAX_RENDERS)))
    assert codes == [200] * (4 * MAX_RENDERS)
    assert 1 < peak[0] <= MAX_RENDERS, peak[0]
