"""MIS, the Microscopical Information System.

A PostGIS catalogue that models Deposit -> DrillCore -> Plug -> Rock -> Grain -> Roxel,
published through OGC API - Features, fed by an image segmentation pipeline.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mis")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
