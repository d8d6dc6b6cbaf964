"""Bearer tokens for writes: configured on the server, stored only as salted hashes.

Reads are open; every write (OGC API - Features Part 4: POST of a GeoJSON feature, PUT,
PATCH, DELETE under ``/collections``) needs ``Authorization: Bearer <token>``.

- ``mis token create NAME`` makes a token ``mis_<key id>_<secret>`` (32 random bytes of
  secret), prints it **once**, and stores ``{key id, name, salt, sha256(salt + secret),
  created}`` in the token file: ``MIS_HOME/api/tokens.json`` (or ``MIS_API_TOKENS``,
  or ``mis serve --tokens FILE``), written with mode 0600. The secret itself is never
  stored: a leaked token file does not let anyone write.
- ``mis token list`` shows names and key ids; ``mis token revoke KEY_ID`` removes one.
- The server re-reads the file when it changes, so tokens can be added or revoked while
  it runs.

A fast salted SHA-256 is enough here (not a slow password hash): the secrets are 256-bit
random values, not human passwords, so there is nothing to guess. Comparison is in
constant time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from mis.settings import mis_home, settings

PREFIX = "mis"


def default_token_file() -> Path:
    """``MIS_API_TOKENS``, else ``MIS_HOME/api/tokens.json``."""
    configured = settings().api_tokens
    if configured:
        return configured.expanduser()
    return mis_home() / "api" / "tokens.json"


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode("utf-8")).hexdigest()


class TokenFileError(ValueError):
    """The token file exists but is not what ``mis token create`` writes."""


def _read(path: Path) -> list[dict]:
    """The token records of ``path`` ([] if there is none); TokenFileError if it is corrupt
    (so that a damaged file refuses every write instead of failing each with a 500)."""
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "[]")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise TokenFileError(f"{path}: cannot be read ({type(exc).__name__})") from None
    records = data if isinstance(data, list) else data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(records, list) or not all(
            isinstance(t, dict) and all(isinstance(t.get(k), str) for k in ("key_id", "salt", "sha256"))
            for t in records):
        raise TokenFileError(f"{path}: not a token file (a list of key_id/salt/sha256 records)")
    return records


def _write(path: Path, tokens: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"tokens": tokens}, fh, indent=2)
    os.replace(tmp, path)


def create_token(name: str, path: Path | None = None) -> str:
    """Make a new token for ``name``, store its salted hash, return the token (once)."""
    path = path or default_token_file()
    key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    tokens = [t for t in _read(path) if t.get("key_id") != key_id]
    tokens.append({"key_id": key_id, "name": name, "salt": salt, "sha256": _digest(salt, secret),
                   "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
    _write(path, tokens)
    return f"{PREFIX}_{key_id}_{secret}"


def list_tokens(path: Path | None = None) -> list[dict]:
    """Key id, name and creation time of every token (never a secret: none is stored)."""
    return [{k: t.get(k) for k in ("key_id", "name", "created")} for t in _read(path or default_token_file())]


def revoke_token(key_id: str, path: Path | None = None) -> bool:
    """Remove a token by key id; False if there was none."""
    path = path or default_token_file()
    tokens = _read(path)
    kept = [t for t in tokens if t.get("key_id") != key_id]
    if len(kept) == len(tokens):
        return False
    _write(path, kept)
    return True


@dataclass
class TokenStore:
    """The server's view of the token file, re-read when the file changes."""

    path: Path

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._by_id: dict[str, dict] = {}
        #: why the file could not be used (a corrupt file refuses every write), else None
        self.problem: str | None = None

    def _load(self) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp == self._stamp and (stamp is not None or not self._by_id):
                return
            try:
                self._by_id = {t["key_id"]: t for t in _read(self.path)} if stamp else {}
                self.problem = None
            except TokenFileError as exc:
                self._by_id, self.problem = {}, str(exc)
            self._stamp = stamp

    def verify(self, token: str | None) -> str | None:
        """The token's name if it is valid, else None."""
        if not token:
            return None
        parts = token.strip().split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX or not all(p.isascii() for p in parts):
            return None
        self._load()
        record = self._by_id.get(parts[1])
        if record is None:
            return None
        try:
            digest = _digest(record["salt"], parts[2])
        except ValueError:  # a salt that is not hex: a damaged record never matches
            return None
        if hmac.compare_digest(digest, record["sha256"]):
            return record.get("name") or parts[1]
        return None

    @property
    def configured(self) -> bool:
        self._load()
        return bool(self._by_id)


class WriteRefused(Exception):
    """A write without exactly one valid bearer token: ``status`` 401, or 400 for an
    ambiguous request (a header given twice)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status

    @property
    def code(self) -> str:
        """The OGC API exception code of the answer."""
        return "Unauthorized" if self.status == 401 else "InvalidParameterValue"


#: Headers a write must carry at most once: two of them are read differently by different
#: layers (one the first, another the last), so a request with two is refused outright.
SINGLE_HEADERS = (b"authorization", b"content-type", b"content-length", b"transfer-encoding")


def duplicated_header(raw_headers: list[tuple[bytes, bytes]]) -> str | None:
    """The name of a header of :data:`SINGLE_HEADERS` that ``raw_headers`` carry twice."""
    seen: set[bytes] = set()
    for key, _value in raw_headers:
        key = key.lower()
        if key in SINGLE_HEADERS:
            if key in seen:
                return key.decode("latin-1")
            seen.add(key)
    return None


def authorise_write(tokens: TokenStore | None, raw_headers: list[tuple[bytes, bytes]] | None) -> str:
    """The name of the token that authorises this write; :class:`WriteRefused` otherwise.

    Called where each write happens (the provider's create/update/delete, the bulk
    registration route), with the request's raw header list as it arrived: no layer in
    front decides for it. Without a token store or headers (a provider used outside the
    MIS server) nothing is authorised.
    """
    if tokens is None or raw_headers is None:
        raise WriteRefused("writes are accepted only through the MIS server with a bearer token")
    twice = duplicated_header(raw_headers)
    if twice:
        raise WriteRefused(f"the {twice} header is given more than once", 400)
    header = next((v.decode("latin-1") for k, v in raw_headers if k.lower() == b"authorization"), None)
    who = tokens.verify(bearer(header))
    if who is None:
        reason = ("a valid bearer token is required to write (Authorization: Bearer <token>; "
                  "a data manager creates one with `mis token create NAME`)")
        if tokens.problem:
            reason += f"; the server's token file is unusable, so every write is refused: {tokens.problem}"
        elif not tokens.configured:
            reason += "; no token is configured on this server yet"
        raise WriteRefused(reason)
    return who


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
