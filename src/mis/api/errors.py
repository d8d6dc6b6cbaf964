"""How the feature provider's problems reach a client: a 400 for what the request asks,
a 503 while the catalogue cannot be reached, never a 500 with a stack trace."""

from __future__ import annotations

import psycopg
from pygeoapi.provider.base import ProviderConnectionError, ProviderGenericError, ProviderInvalidQueryError
from sqlalchemy.exc import DBAPIError

from mis.settings import settings

__all__ = ["CatalogueUnavailable", "MISInvalidQuery", "db_error"]


class CatalogueUnavailable(ProviderConnectionError):
    """The catalogue database cannot be reached (restarting, down): HTTP 503, and the
    server's middleware adds ``Retry-After``; the pools reconnect once it is back."""

    http_status_code = 503
    ogc_exception_code = "ServiceUnavailable"

    def __init__(self, msg: str = "the catalogue database is not reachable; try again shortly") -> None:
        super().__init__(msg, user_msg=msg)


class MISInvalidQuery(ProviderInvalidQueryError):
    """A request the provider cannot answer because of what it asks: HTTP 400."""

    ogc_exception_code = "InvalidParameterValue"

    def __init__(self, msg: str) -> None:
        super().__init__(msg, user_msg=msg)


def db_error(exc: DBAPIError) -> ProviderGenericError:
    """A request-caused database error as a 400 with PostgreSQL's first line; a lost
    connection as a 503."""
    orig = exc.orig
    if isinstance(orig, psycopg.errors.QueryCanceled):
        return MISInvalidQuery(
            f"the query ran longer than {settings().statement_timeout_ms // 1000} s and was cancelled: "
            "narrow it (bbox, filter, limit)")
    if isinstance(orig, (psycopg.errors.DataError, psycopg.errors.ProgrammingError,
                         psycopg.errors.SyntaxError, psycopg.errors.UndefinedFunction)):
        first = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
        return MISInvalidQuery(f"the catalogue refused this query: {first}")
    if isinstance(orig, psycopg.errors.InternalError_) and "geometry" in str(orig):
        return MISInvalidQuery(f"the catalogue refused a geometry of this query: {str(orig).splitlines()[0]}")
    if isinstance(orig, (psycopg.OperationalError, psycopg.InterfaceError)) or exc.connection_invalidated:
        return CatalogueUnavailable()
    return ProviderConnectionError(user_msg=f"database error: {type(orig).__name__}")
