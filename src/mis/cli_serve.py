"""``mis serve`` and ``mis token ...``: thin commands over :mod:`mis.api`.

Attached in :mod:`mis.cli` as ``app.command("serve")(serve_cmd)`` and
``app.add_typer(token_app, name="token")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)


def serve_cmd(
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 5000,
    public_url: Annotated[str | None, typer.Option(
        help="URL clients use to reach the server, when it differs from http://HOST:PORT "
             "(behind a proxy).")] = None,
    tokens: Annotated[Path | None, typer.Option(
        help="Token file for writes (default MIS_HOME/api/tokens.json; see `mis token create`).")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the catalogue through OGC API - Features (pygeoapi): maps, filters, writes.

    Reads are open; writes (Part 4 POST/PUT/DELETE on deposits, drillcores, surveys,
    plugs) need a bearer token from `mis token create`. Open the URL in a browser, or
    add it in QGIS as an "OGC API - Features" connection.

    Example: `mis serve --port 5000` then open http://127.0.0.1:5000/collections
    """
    from mis.api.app import serve
    from mis.catalogue.postgres import PostgresError

    try:
        serve(host=host, port=port, public_url=public_url, token_file=tokens, log_level=log_level)
    except (PostgresError, RuntimeError, FileNotFoundError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from exc


token_app = typer.Typer(help="Bearer tokens for API writes (stored hashed).", no_args_is_help=True)


@token_app.command("create")
def token_create_cmd(
    name: Annotated[str, typer.Argument(help="Who or what the token is for (shown in listings).")],
    tokens: Annotated[Path | None, typer.Option(help="Token file (default MIS_HOME/api/tokens.json).")] = None,
) -> None:
    """Create a write token; it is printed once and only its salted hash is kept.

    Example: `mis token create alice` then `curl -H "Authorization: Bearer <token>" ...`
    """
    from mis.api.auth import create_token, default_token_file

    token = create_token(name, tokens)
    console.print(f"token for {name!r} (shown once; stored hashed in {tokens or default_token_file()}):",
                  highlight=False)
    print(token)


@token_app.command("list")
def token_list_cmd(
    tokens: Annotated[Path | None, typer.Option(help="Token file (default MIS_HOME/api/tokens.json).")] = None,
) -> None:
    """List the write tokens (key id, name, created); secrets are never stored.

    Example: `mis token list`
    """
    from mis.api.auth import list_tokens

    rows = list_tokens(tokens)
    if not rows:
        console.print("no tokens (create one with: mis token create NAME)")
    for t in rows:
        console.print(f"{t['key_id']}  {t['name']}  {t['created']}", highlight=False)


@token_app.command("revoke")
def token_revoke_cmd(
    key_id: Annotated[str, typer.Argument(help="Key id from `mis token list`.")],
    tokens: Annotated[Path | None, typer.Option(help="Token file (default MIS_HOME/api/tokens.json).")] = None,
) -> None:
    """Revoke a write token by its key id (a running server notices at once).

    Example: `mis token revoke 1a2b3c4d`
    """
    from mis.api.auth import revoke_token

    if not revoke_token(key_id, tokens):
        err.print(f"[bold red]error:[/] no token with key id {key_id!r}", highlight=False)
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")
