"""Turn database refusals into messages that name the record, the rule and the value."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

#: What each named database rule means, in the words a data manager uses.
RULES: dict[str, str] = {
    "ck_plug_from_before_to": "from_m must be less than to_m",
    "ck_plug_from_not_negative": "from_m must be >= 0",
    "ck_plug_within_hole": "a plug must lie within 0..length_m of its hole",
    "ck_survey_station_within_hole": "a survey must lie within 0..length_m of its hole",
    "ck_survey_station_depth_not_negative": "survey depth_m must be >= 0",
    "ck_drillcore_length_covers_samples": "length_m must cover every plug and survey of the hole",
    "ck_drillcore_length_positive": "length_m must be > 0",
    "ck_drillcore_dip_range": "dip must be within [-90, 90] degrees",
    "ck_survey_station_dip_range": "dip must be within [-90, 90] degrees",
    "ck_drillcore_azimuth_range": "azimuth must be within [0, 360) degrees",
    "ck_survey_station_azimuth_range": "azimuth must be within [0, 360) degrees",
    "ck_drillcore_magnetic_needs_declination": "a magnetic azimuth reference needs magnetic_declination_deg",
    "ck_drillcore_dates_order": "end_date must not be before start_date",
    "ck_deposit_footprint_valid": "the footprint must be a valid geometry (ST_IsValid)",
    "ck_deposit_footprint_type": "the footprint must be a Polygon, MultiPolygon or Point",
    "ck_rock_constituent_proportion_area_range": "proportion_area must be within [0, 1]",
    "ck_rock_constituent_proportion_wt_range": "proportion_wt must be within [0, 1]",
    "ck_rock_constituents_sum": "a rock's constituent proportions must sum to at most 1",
    "ck_image_depth_registration": "a depth axis needs 'x' or 'y' with 0 <= top < bottom",
    "ck_image_pixel_size_positive": "pixel_size_um must be > 0",
}


class CatalogueError(ValueError):
    """A write the catalogue refused; nothing of the transaction was written."""


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached, or the connection was lost mid-transaction:
    nothing of the transaction was written (PostgreSQL rolls back what it did not commit).
    Callers say so in one line (CLI) or answer 503 (API) instead of a traceback."""

    def __init__(self, message: str = "the database is not reachable or the connection was lost; "
                                      "nothing was written") -> None:
        super().__init__(message)


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` (SQLAlchemy's or psycopg's) means "the database is not there"."""
    import psycopg
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated) or isinstance(exc.orig, (psycopg.OperationalError,
                                                                         psycopg.InterfaceError))
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


def explain(error: IntegrityError) -> CatalogueError:
    """A :class:`CatalogueError` for a database integrity error, naming rule and detail."""
    diag = getattr(error.orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None) or ""
    table = getattr(diag, "table_name", None) or ""
    primary = getattr(diag, "message_primary", None) or str(error.orig).splitlines()[0]
    detail = getattr(diag, "message_detail", None)
    rule = RULES.get(constraint)
    sqlstate = getattr(error.orig, "sqlstate", "")
    if rule is None and sqlstate == "23505":
        rule = "names must be unique within their parent"
    elif rule is None and sqlstate == "23503":
        rule = ("the referenced record or vocabulary concept must exist"
                if "is not present" in (detail or "") else "a record with children cannot be deleted")
    parts = [f"{table}: " if table else "", f"{rule} " if rule else "", f"[{constraint}]" if constraint else ""]
    message = "".join(parts).strip() or primary
    extra = detail or (primary if rule else None)
    if extra and extra not in message:
        message += f": {extra}"
    return CatalogueError(message)
