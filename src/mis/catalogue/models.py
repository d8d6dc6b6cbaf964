"""The catalogue: Deposit -> DrillCore -> Plug -> Image -> SegmentationRun -> Rock/Grain/Roxel.

The rules that keep the catalogue sound live in the database (CHECK, UNIQUE, FOREIGN KEY,
and the triggers of :mod:`mis.catalogue.ddl`), so that every writer, the CLI,
the API, a notebook or ``psql``, is held to them, not only this Python code.

Conventions:

- Hierarchy links are ``ON DELETE RESTRICT``: deleting a parent with children fails
  unless the caller asks for a cascade (:func:`mis.catalogue.delete.delete`). Parts that
  belong to one record and mean nothing alone (survey stations of a hole, constituents of
  a rock, the class list of a run, broader links of a concept) go with their owner.
- Classification columns of the small tables reference ``concept.uri``. The two tables
  built for tens of millions of rows (``grain``, ``roxel``) reference the concept's
  integer ``id`` instead (4 bytes, not a URI per row) and keep per-class fractions as a
  ``real[]`` aligned with the run's class list (``run_class``), not as JSON.
- World geometries are EPSG:4326 with Z = elevation in metres; grain outlines are in image
  micrometres (SRID 0: an engineering CRS, never drawn on a map).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    REAL,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

WGS84 = 4326
#: Image micrometres: an engineering CRS without an EPSG code.
IMAGE_SRID = 0


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSONB, float: Double, dt.datetime: DateTime(timezone=True)}


def _concept_fk(nullable: bool = True, ondelete: str = "RESTRICT") -> Mapped[str | None]:
    return mapped_column(Text, ForeignKey("concept.uri", ondelete=ondelete), nullable=nullable, index=True)


def _parent_fk(target: str, ondelete: str = "RESTRICT") -> Mapped[int]:
    return mapped_column(BigInteger, ForeignKey(target, ondelete=ondelete), nullable=False, index=True)


def _run_key() -> Mapped[int]:
    """``run_id`` of a run-partitioned table: partition key and part of the primary key."""
    return mapped_column(BigInteger, primary_key=True, info={"references": "segmentation_run.id"})


def _created() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def _updated() -> Mapped[dt.datetime]:
    return mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


def _range(column: str, low: float, high: float, *, high_open: bool = False) -> str:
    op = "<" if high_open else "<="
    return f"{column} IS NULL OR ({column} >= {low} AND {column} {op} {high})"


# --------------------------------------------------------------------------- vocabulary
class ConceptScheme(Base):
    """A SKOS concept scheme (CGI lithology, IMA minerals, MIS sample types, ...)."""

    __tablename__ = "concept_scheme"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    uri: Mapped[str] = mapped_column(Text, unique=True, nullable=False)
    title: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    licence: Mapped[str | None] = mapped_column(Text)


class Concept(Base):
    """A vocabulary term; every classification in the catalogue points at one."""

    __tablename__ = "concept"

    uri: Mapped[str] = mapped_column(Text, primary_key=True)
    id: Mapped[int] = mapped_column(Integer, Identity(), unique=True, nullable=False)
    scheme: Mapped[str] = mapped_column(
        Text, ForeignKey("concept_scheme.key", ondelete="RESTRICT"), nullable=False, index=True
    )
    pref_label: Mapped[str] = mapped_column(Text, nullable=False)
    labels: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    alt_labels: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    notation: Mapped[str | None] = mapped_column(Text)
    definition: Mapped[str | None] = mapped_column(Text)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")

    broader: Mapped[list[Concept]] = relationship(
        secondary="concept_broader",
        primaryjoin="Concept.uri == ConceptBroader.concept_uri",
        secondaryjoin="Concept.uri == ConceptBroader.broader_uri",
        viewonly=True,
    )

    __table_args__ = (Index("ix_concept_notation_lower", func.lower(notation)),)


class ConceptBroader(Base):
    """skos:broader, many-to-many: CGI lithology is a polyhierarchy."""

    __tablename__ = "concept_broader"

    concept_uri: Mapped[str] = mapped_column(
        Text, ForeignKey("concept.uri", ondelete="CASCADE"), primary_key=True
    )
    broader_uri: Mapped[str] = mapped_column(
        Text, ForeignKey("concept.uri", ondelete="CASCADE"), primary_key=True, index=True
    )

    __table_args__ = (CheckConstraint("concept_uri <> broader_uri", name="not_self"),)


# --------------------------------------------------------------------------- deposits
class Deposit(Base):
    """~ EarthResourceML MineralOccurrence."""

    __tablename__ = "deposit"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True, nullable=False)
    occurrence_type_uri: Mapped[str | None] = _concept_fk()
    deposit_model_uri: Mapped[str | None] = _concept_fk()
    deposit_model_note: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    footprint: Mapped[Any] = mapped_column(Geometry("GEOMETRY", srid=WGS84, spatial_index=True))
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()

    commodities: Mapped[list[DepositCommodity]] = relationship(
        back_populates="deposit", cascade="all, delete-orphan", order_by="DepositCommodity.rank"
    )
    drillcores: Mapped[list[DrillCore]] = relationship(back_populates="deposit", passive_deletes="all")

    __table_args__ = (
        CheckConstraint("name <> ''", name="name_not_empty"),
        CheckConstraint(
            "footprint IS NULL OR GeometryType(footprint) IN ('POLYGON', 'MULTIPOLYGON', 'POINT')",
            name="footprint_type",
        ),
        CheckConstraint("footprint IS NULL OR ST_IsValid(footprint)", name="footprint_valid"),
    )


class DepositCommodity(Base):
    """A commodity of a deposit (CGI/ERML commodity code), in order of importance."""

    __tablename__ = "deposit_commodity"

    deposit_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("deposit.id", ondelete="CASCADE"), primary_key=True
    )
    commodity_uri: Mapped[str] = mapped_column(
        Text, ForeignKey("concept.uri", ondelete="RESTRICT"), primary_key=True, index=True
    )
    rank: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="1")

    deposit: Mapped[Deposit] = relationship(back_populates="commodities")


# --------------------------------------------------------------------------- drillholes
class DrillCore(Base):
    """~ GeoSciML Borehole / GeoSciML-Lite BoreholeView."""

    __tablename__ = "drillcore"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    deposit_id: Mapped[int] = _parent_fk("deposit.id")
    name: Mapped[str] = mapped_column(Text, nullable=False)
    purpose: Mapped[str | None] = mapped_column(Text)
    collar: Mapped[Any] = mapped_column(
        Geometry("POINTZ", srid=WGS84, spatial_index=True), nullable=False
    )
    collar_x: Mapped[float | None] = mapped_column(Double)
    collar_y: Mapped[float | None] = mapped_column(Double)
    collar_epsg: Mapped[int] = mapped_column(Integer, nullable=False, server_default=str(WGS84))
    elevation_m: Mapped[float] = mapped_column(Double, nullable=False)
    elevation_reference: Mapped[str] = mapped_column(
        Text, nullable=False, server_default="ground surface"
    )
    elevation_srs: Mapped[str | None] = mapped_column(Text)
    length_m: Mapped[float] = mapped_column(Double, nullable=False)
    dip: Mapped[float] = mapped_column(Double, nullable=False, server_default="-90")
    azimuth: Mapped[float] = mapped_column(Double, nullable=False, server_default="0")
    azimuth_reference: Mapped[str] = mapped_column(Text, nullable=False, server_default="true")
    magnetic_declination_deg: Mapped[float | None] = mapped_column(Double)
    drilling_method_uri: Mapped[str | None] = _concept_fk()
    start_date: Mapped[dt.date | None] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    operator: Mapped[str | None] = mapped_column(Text)
    core_custodian: Mapped[str | None] = mapped_column(Text)
    local_epsg: Mapped[int | None] = mapped_column(Integer)
    desurvey_method: Mapped[str] = mapped_column(
        Text, nullable=False, server_default="minimum_curvature"
    )
    trace: Mapped[Any] = mapped_column(Geometry("LINESTRINGZ", srid=WGS84, spatial_index=True))
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()

    deposit: Mapped[Deposit] = relationship(back_populates="drillcores")
    surveys: Mapped[list[SurveyStation]] = relationship(
        back_populates="drillcore", cascade="all, delete-orphan", order_by="SurveyStation.depth_m"
    )
    plugs: Mapped[list[Plug]] = relationship(back_populates="drillcore", passive_deletes="all")

    __table_args__ = (
        UniqueConstraint("deposit_id", "name"),
        CheckConstraint("name <> ''", name="name_not_empty"),
        CheckConstraint("length_m > 0", name="length_positive"),
        CheckConstraint(_range("dip", -90, 90), name="dip_range"),
        CheckConstraint(_range("azimuth", 0, 360, high_open=True), name="azimuth_range"),
        CheckConstraint(
            "azimuth_reference IN ('true', 'grid', 'magnetic')", name="azimuth_reference"
        ),
        CheckConstraint(
            "azimuth_reference <> 'magnetic' OR magnetic_declination_deg IS NOT NULL",
            name="magnetic_needs_declination",
        ),
        CheckConstraint(_range("magnetic_declination_deg", -180, 180), name="declination_range"),
        CheckConstraint(
            "desurvey_method IN ('minimum_curvature', 'balanced_tangential', 'tangential')",
            name="desurvey_method",
        ),
        CheckConstraint(
            "end_date IS NULL OR start_date IS NULL OR end_date >= start_date", name="dates_order"
        ),
    )


class SurveyStation(Base):
    """A downhole survey: orientation of the hole at a depth along it."""

    __tablename__ = "survey_station"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    drillcore_id: Mapped[int] = _parent_fk("drillcore.id", ondelete="CASCADE")
    depth_m: Mapped[float] = mapped_column(Double, nullable=False)
    dip: Mapped[float] = mapped_column(Double, nullable=False)
    azimuth: Mapped[float] = mapped_column(Double, nullable=False)

    drillcore: Mapped[DrillCore] = relationship(back_populates="surveys")

    __table_args__ = (
        UniqueConstraint("drillcore_id", "depth_m"),
        Index("ix_survey_station_depth_m", "depth_m"),
        CheckConstraint("depth_m >= 0", name="depth_not_negative"),
        CheckConstraint(_range("dip", -90, 90), name="dip_range"),
        CheckConstraint(_range("azimuth", 0, 360, high_open=True), name="azimuth_range"),
    )


class Plug(Base):
    """A sample taken over a depth interval (~ SOSA Sample, GeoSciML GeologicSpecimen)."""

    __tablename__ = "plug"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    drillcore_id: Mapped[int] = _parent_fk("drillcore.id")
    name: Mapped[str] = mapped_column(Text, nullable=False)
    from_m: Mapped[float] = mapped_column(Double, nullable=False)
    to_m: Mapped[float] = mapped_column(Double, nullable=False)
    sample_type_uri: Mapped[str] = mapped_column(
        Text, ForeignKey("concept.uri", ondelete="RESTRICT"), nullable=False, index=True
    )
    lithology_uri: Mapped[str | None] = _concept_fk()
    preparation: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    position: Mapped[Any] = mapped_column(Geometry("POINTZ", srid=WGS84, spatial_index=True))
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()

    drillcore: Mapped[DrillCore] = relationship(back_populates="plugs")
    images: Mapped[list[Image]] = relationship(back_populates="plug", passive_deletes="all")

    __table_args__ = (
        UniqueConstraint("drillcore_id", "name"),
        Index("ix_plug_depth", "from_m", "to_m"),
        CheckConstraint("name <> ''", name="name_not_empty"),
        CheckConstraint("from_m >= 0", name="from_not_negative"),
        CheckConstraint("from_m < to_m", name="from_before_to"),
    )


# --------------------------------------------------------------------------- imagery
class Image(Base):
    """A microscope image or core photo stored as OME-Zarr, with its depth registration.

    Depth registration: with ``depth_axis`` NULL the whole image sits at the plug interval;
    with ``depth_axis`` 'x' or 'y' that pixel axis maps linearly from ``depth_top_m`` (first
    pixel) to ``depth_bottom_m`` (last pixel), so roxels become a downhole log.
    """

    __tablename__ = "image"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    plug_id: Mapped[int] = _parent_fk("plug.id")
    name: Mapped[str] = mapped_column(Text, nullable=False)
    store_uri: Mapped[str] = mapped_column(Text, nullable=False)
    array_paths: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    shape: Mapped[list[int]] = mapped_column(ARRAY(Integer), nullable=False)
    chunks: Mapped[list[int]] = mapped_column(ARRAY(Integer), nullable=False)
    dtype: Mapped[str] = mapped_column(Text, nullable=False)
    pixel_size_um: Mapped[float] = mapped_column(Double, nullable=False)
    modality_uri: Mapped[str] = mapped_column(
        Text, ForeignKey("concept.uri", ondelete="RESTRICT"), nullable=False, index=True
    )
    band_names: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    band_wavelengths_nm: Mapped[list[float] | None] = mapped_column(ARRAY(REAL))
    checksum_sha256: Mapped[str] = mapped_column(Text, nullable=False)
    source_name: Mapped[str | None] = mapped_column(Text)
    depth_axis: Mapped[str | None] = mapped_column(Text)
    depth_top_m: Mapped[float | None] = mapped_column(Double)
    depth_bottom_m: Mapped[float | None] = mapped_column(Double)
    created_at: Mapped[dt.datetime] = _created()

    plug: Mapped[Plug] = relationship(back_populates="images")

    __table_args__ = (
        UniqueConstraint("plug_id", "name"),
        UniqueConstraint("plug_id", "checksum_sha256"),
        CheckConstraint("pixel_size_um > 0", name="pixel_size_positive"),
        CheckConstraint("array_length(shape, 1) = 3", name="shape_cyx"),
        CheckConstraint("array_length(chunks, 1) = 3", name="chunks_cyx"),
        CheckConstraint(
            "(depth_axis IS NULL AND depth_top_m IS NULL AND depth_bottom_m IS NULL) OR "
            "(depth_axis IN ('x', 'y') AND depth_top_m >= 0 AND depth_top_m < depth_bottom_m)",
            name="depth_registration",
        ),
    )


class SegmentationRun(Base):
    """One classification of one image; its grains, roxels and rock appear or vanish together."""

    __tablename__ = "segmentation_run"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    image_id: Mapped[int] = _parent_fk("image.id")
    name: Mapped[str] = mapped_column(Text, nullable=False, server_default="default")
    model_path: Mapped[str | None] = mapped_column(Text)
    model_sha256: Mapped[str | None] = mapped_column(Text)
    feature_config: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    software_version: Mapped[str] = mapped_column(Text, nullable=False)
    input_checksum: Mapped[str | None] = mapped_column(Text)
    roxel_size: Mapped[int] = mapped_column(Integer, nullable=False, server_default="16")
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="running")
    started_at: Mapped[dt.datetime] = _created()
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    classes: Mapped[list[RunClass]] = relationship(
        cascade="all, delete-orphan", order_by="RunClass.class_index"
    )

    __table_args__ = (
        UniqueConstraint("image_id", "name"),
        CheckConstraint("roxel_size > 0", name="roxel_size_positive"),
        CheckConstraint("status IN ('running', 'complete', 'failed')", name="status"),
        CheckConstraint("finished_at IS NULL OR finished_at >= started_at", name="times_order"),
    )


class RunClass(Base):
    """The run's ordered class list: index ``k`` of every roxel composition array."""

    __tablename__ = "run_class"

    run_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("segmentation_run.id", ondelete="CASCADE"), primary_key=True
    )
    class_index: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    concept_uri: Mapped[str] = mapped_column(
        Text, ForeignKey("concept.uri", ondelete="RESTRICT"), nullable=False, index=True
    )

    __table_args__ = (
        UniqueConstraint("run_id", "concept_uri"),
        CheckConstraint("class_index >= 0", name="index_not_negative"),
    )


# --------------------------------------------------------------------------- rocks
class Rock(Base):
    """~ GeoSciML RockMaterial + CompoundMaterial: what a plug is made of (per run)."""

    __tablename__ = "rock"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    plug_id: Mapped[int] = _parent_fk("plug.id")
    run_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("segmentation_run.id", ondelete="RESTRICT"), index=True
    )
    lithology_uri: Mapped[str | None] = _concept_fk()
    lithology_source: Mapped[str | None] = mapped_column(Text)
    grain_size: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    association: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    liberation: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    surface_area: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    created_at: Mapped[dt.datetime] = _created()

    constituents: Mapped[list[RockConstituent]] = relationship(
        back_populates="rock", cascade="all, delete-orphan"
    )

    __table_args__ = (
        UniqueConstraint("plug_id", "run_id", postgresql_nulls_not_distinct=True),
        CheckConstraint(
            "lithology_source IS NULL OR lithology_source IN ('user', 'rule')",
            name="lithology_source",
        ),
    )


class RockConstituent(Base):
    """~ GeoSciML ConstituentPart: a mineral's share of a rock (area and weight fractions)."""

    __tablename__ = "rock_constituent"

    rock_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("rock.id", ondelete="CASCADE"), primary_key=True
    )
    mineral_uri: Mapped[str] = mapped_column(
        Text, ForeignKey("concept.uri", ondelete="RESTRICT"), primary_key=True, index=True
    )
    role_uri: Mapped[str | None] = _concept_fk()
    proportion_area: Mapped[float] = mapped_column(Double, nullable=False)
    proportion_wt: Mapped[float | None] = mapped_column(Double)

    rock: Mapped[Rock] = relationship(back_populates="constituents")

    __table_args__ = (
        CheckConstraint(_range("proportion_area", 0, 1), name="proportion_area_range"),
        CheckConstraint(_range("proportion_wt", 0, 1), name="proportion_wt_range"),
    )


# --------------------------------------------------------------------------- grains, roxels
class Grain(Base):
    """A segmented mineral grain: a connected component of one class in one run.

    Partitioned by run (see :class:`Roxel`); ``id`` is unique through its one sequence.
    """

    __tablename__ = "grain"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    run_id: Mapped[int] = _run_key()
    label: Mapped[int] = mapped_column(BigInteger, nullable=False)
    mineral_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("concept.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    outline: Mapped[Any] = mapped_column(
        Geometry("POLYGON", spatial_index=True)  # SRID 0 = IMAGE_SRID, nullable=False
    )
    centroid_x_um: Mapped[float] = mapped_column(REAL, nullable=False)
    centroid_y_um: Mapped[float] = mapped_column(REAL, nullable=False)
    area_um2: Mapped[float] = mapped_column(REAL, nullable=False)
    perimeter_um: Mapped[float] = mapped_column(REAL, nullable=False)
    ecd_um: Mapped[float] = mapped_column(REAL, nullable=False)
    major_axis_um: Mapped[float] = mapped_column(REAL, nullable=False)
    minor_axis_um: Mapped[float] = mapped_column(REAL, nullable=False)
    orientation_deg: Mapped[float] = mapped_column(REAL, nullable=False)
    aspect_ratio: Mapped[float] = mapped_column(REAL, nullable=False)
    solidity: Mapped[float] = mapped_column(REAL, nullable=False)
    form_factor: Mapped[float] = mapped_column(REAL, nullable=False)
    roundness: Mapped[float] = mapped_column(REAL, nullable=False)
    feret_max_um: Mapped[float] = mapped_column(REAL, nullable=False)
    feret_min_um: Mapped[float] = mapped_column(REAL, nullable=False)
    mean_probability: Mapped[float | None] = mapped_column(REAL)
    touches_border: Mapped[bool] = mapped_column(Boolean, nullable=False)
    chunk_keys: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)

    __table_args__ = (
        UniqueConstraint("run_id", "label"),
        Index("ix_grain_area_um2", "area_um2"),
        CheckConstraint("area_um2 > 0", name="area_positive"),
        CheckConstraint("solidity > 0 AND solidity <= 1.000001", name="solidity_range"),
        CheckConstraint(_range("mean_probability", 0, 1), name="probability_range"),
        {"postgresql_partition_by": "LIST (run_id)"},
    )


class Roxel(Base):
    """An elementary rock cell: ``roxel_size``^2 pixels of one image in one run.

    Its pixel window is ``(row * r, col * r, r, r)`` clipped to the image, and its raw
    link is the zarr chunk holding that window (a run's roxel size divides the chunk
    size, so a roxel never straddles chunks); the publication views spell both out.

    One partition per run. ``roxel`` and ``grain`` are ``LIST (run_id)`` partitioned
    tables, and each run's rows live in ``roxel_run_<id>`` / ``grain_run_<id>``
    (:mod:`mis.catalogue.partitions`). The run writer fills bare tables, lets PostgreSQL
    build their indexes in bulk and attaches them, which is about twice as fast as
    inserting into indexed tables, and replacing or deleting a run is a ``DROP TABLE``,
    not the deletion of millions of rows. The links that follow from this:

    - ``run_id`` is the partition key; a partition exists exactly while its run does (a
      trigger on ``segmentation_run`` creates it with the run, refuses to delete a run
      whose rows are still there, and drops it with the run). That is what a foreign key
      to ``segmentation_run`` would say. Such a key would lock ``segmentation_run``
      against concurrent ingestions each time a run's partition is attached.
    - ``dominant_grain_id`` points at a grain of the same run. The foreign key
      ``(dominant_grain_id, run_id) -> grain (id, run_id)`` is declared per partition
      pair, so a run's check reads only that run's grains.
    """

    __tablename__ = "roxel"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    run_id: Mapped[int] = _run_key()
    row: Mapped[int] = mapped_column(Integer, nullable=False)
    col: Mapped[int] = mapped_column(Integer, nullable=False)
    composition: Mapped[list[float]] = mapped_column(ARRAY(REAL), nullable=False)
    dominant_class_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("concept.id", ondelete="RESTRICT"), nullable=False
    )
    dominant_fraction: Mapped[float] = mapped_column(REAL, nullable=False)
    dominant_grain_id: Mapped[int | None] = mapped_column(BigInteger, index=True, info={"references": "grain.id"})
    depth_m: Mapped[float | None] = mapped_column(Double)
    position: Mapped[Any] = mapped_column(Geometry("POINTZ", srid=WGS84, spatial_index=True))

    __table_args__ = (
        UniqueConstraint("run_id", "row", "col"),
        Index("ix_roxel_class_depth", "dominant_class_id", "depth_m"),
        # "this class in this bbox": one GiST over both (needs btree_gist) instead of
        # AND-ing a class B-tree with the position GiST (10x faster on 5 M roxels)
        Index("ix_roxel_class_position", "dominant_class_id", "position", postgresql_using="gist"),
        Index("ix_roxel_depth_m", "depth_m"),
        CheckConstraint("row >= 0 AND col >= 0", name="cell_not_negative"),
        CheckConstraint(_range("dominant_fraction", 0, 1), name="fraction_range"),
        CheckConstraint(
            "0 <= ALL(composition) AND 1 >= ALL(composition)", name="composition_range"
        ),
        {"postgresql_partition_by": "LIST (run_id)"},
    )


#: The hierarchy, parent first: used for explicit cascades and for status listings.
HIERARCHY: tuple[type[Base], ...] = (Deposit, DrillCore, Plug, Image, SegmentationRun)
