"""QGIS as a test client: load MIS collections through QGIS's own OGC API - Features provider.

Run by ``tests/test_qgis.py`` with Debian's ``/usr/bin/python3`` (the QGIS Python bindings,
``python3-qgis``, are built for it, not for the project's virtualenv), headless
(``QT_QPA_PLATFORM=offscreen``)::

    python3 tests/qgis_client.py SPEC.json OUT.json

SPEC: ``{"url": server URL, "layers": [{"key", "typename", "query"}], "render": {"keys",
"png", "size"}}``; ``query`` is appended to the connection URL (``?datetime=...``: QGIS
3.22 passes a connection URL's query to every request it makes). OUT: per layer key,
what QGIS made of it (valid, geometry type, Z, feature count, field names and types,
every feature's attribute values by feature id), and for the rendered map the count of
pixels that are not the background. Values are written as JSON: dates and times in ISO
8601, QGIS's NULL as null.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _value(value):
    """A QGIS attribute value as JSON."""
    from qgis.PyQt.QtCore import QDate, QDateTime, Qt, QVariant

    if value is None or (isinstance(value, QVariant) and value.isNull()):
        return None
    if isinstance(value, QDateTime):
        return value.toUTC().toString(Qt.ISODateWithMs) if value.isValid() else None
    if isinstance(value, QDate):
        return value.toString(Qt.ISODate) if value.isValid() else None
    if isinstance(value, dict):
        return {k: _value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_value(v) for v in value]
    return value


def _layer(url: str, spec: dict):
    from qgis.core import QgsVectorLayer

    uri = f"url='{url}{spec.get('query', '')}' typename='{spec['typename']}'"
    return QgsVectorLayer(uri, spec["key"], "OAPIF")


def _describe(layer) -> dict:
    from qgis.core import QgsWkbTypes

    fields = layer.fields()
    features = {}
    for feature in layer.getFeatures():
        features[str(feature.id())] = {fields[i].name(): _value(v) for i, v in enumerate(feature.attributes())}
    return {
        "valid": layer.isValid(),
        "geometry": QgsWkbTypes.displayString(layer.wkbType()),
        "z": QgsWkbTypes.hasZ(layer.wkbType()),
        "count": layer.featureCount(),
        "fields": {f.name(): f.typeName() for f in fields},
        "features": features,
    }


def _render(layers: list, png: str, size: int) -> int:
    """Render the layers on a white map; the number of pixels that are not white."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsMapRendererSequentialJob, QgsMapSettings, QgsRectangle
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    extent = QgsRectangle()
    for layer in layers:
        extent.combineExtentWith(layer.extent())
    extent.grow(max(extent.width(), extent.height()) * 0.05 or 1e-3)
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    settings.setExtent(extent)
    settings.setOutputSize(QSize(size, size))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    image.save(png, "PNG")
    white = QColor(255, 255, 255).rgb()
    return sum(1 for y in range(image.height()) for x in range(image.width()) if image.pixel(x, y) != white)


def main(spec_path: str, out_path: str) -> None:
    from qgis.core import QgsApplication

    with open(spec_path, encoding="utf-8") as fh:
        spec = json.load(fh)
    app = QgsApplication([], False)
    app.initQgis()
    layers = {s["key"]: _layer(spec["url"], s) for s in spec["layers"]}
    out = {"layers": {key: _describe(layer) for key, layer in layers.items()}}
    render = spec.get("render")
    if render:
        out["rendered_pixels"] = _render([layers[k] for k in render["keys"]], render["png"], render["size"])
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(out, fh)
    layers.clear()  # before QGIS goes: a layer outliving exitQgis crashes the interpreter's exit
    app.exitQgis()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
