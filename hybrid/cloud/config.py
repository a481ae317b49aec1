"""Where the cloud client keeps its settings and identity, and how it picks a base URL and token.

Files live in ``click.get_app_dir("hybrid")`` (``HYBRID_CONFIG_DIR`` overrides it, which the tests use
so they never touch the real home):

- ``config.json``: ``cloud_url``, ``platform``, ``deadline_s``, the last session used (not secret);
- ``credentials.json``: the client id, the token, its kind and expiry (mode 0600, folder 0700).

Precedence, as the issue fixes it: base URL ``--cloud-url`` > config > ``NEMO_API_URL`` > the vendor's
default; token ``NEMO_TOKEN`` > stored > a fresh anonymous one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import click

VENDOR_URL = "https://mega-api-prod.nemovideo.ai"
CONFIG_ENV = "HYBRID_CONFIG_DIR"
TokenKind = Literal["anonymous", "user", "env"]


def config_dir() -> Path:
    override = os.environ.get(CONFIG_ENV)
    return Path(override) if override else Path(click.get_app_dir("hybrid"))


@dataclass(frozen=True)
class Credentials:
    client_id: str
    token: str | None = None
    kind: TokenKind = "anonymous"
    user_id: str | None = None
    expires_at: str | None = None  # ISO time, as the service gave it

    def __repr__(self) -> str:  # a token must never reach a log through a repr
        token = "set" if self.token else None
        return f"Credentials(client_id={self.client_id!r}, kind={self.kind!r}, token={token})"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # a damaged file is as good as none: it is rewritten on the next save
    return data if isinstance(data, dict) else {}


def _write_private(path: Path, data: Mapping[str, Any]) -> None:
    """Write atomically with mode 0600 from the first byte (never world-readable, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(path.parent, 0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(dict(data), handle, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class Store:
    """The config folder: settings and credentials, read fresh each time (another process may write)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or config_dir()

    @property
    def config_path(self) -> Path:
        return self.folder / "config.json"

    @property
    def credentials_path(self) -> Path:
        return self.folder / "credentials.json"

    def config(self) -> dict[str, Any]:
        return _read_json(self.config_path)

    def update_config(self, **values: Any) -> None:
        data = self.config()
        for key, value in values.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        _write_private(self.config_path, data)

    def credentials(self) -> Credentials:
        """The stored credentials; a client id is made and stored the first time."""
        data = _read_json(self.credentials_path)
        client_id = data.get("client_id")
        if not isinstance(client_id, str) or not client_id or len(client_id) > 64:
            client_id = str(uuid.uuid4())
            data = {"client_id": client_id}
            _write_private(self.credentials_path, data)
        kind: TokenKind = "user" if data.get("kind") == "user" else "anonymous"
        token = data.get("token") if isinstance(data.get("token"), str) else None
        return Credentials(
            client_id=client_id,
            token=token or None,
            kind=kind,
            user_id=data.get("user_id") if isinstance(data.get("user_id"), str) else None,
            expires_at=data.get("expires_at") if isinstance(data.get("expires_at"), str) else None,
        )

    def save_credentials(self, creds: Credentials) -> None:
        data: dict[str, Any] = {"client_id": creds.client_id, "kind": creds.kind}
        if creds.token:
            data["token"] = creds.token
        if creds.user_id:
            data["user_id"] = creds.user_id
        if creds.expires_at:
            data["expires_at"] = creds.expires_at
        _write_private(self.credentials_path, data)

    def forget_token(self) -> None:
        """Logout: drop the token, keep the client id (it identifies this install)."""
        creds = self.credentials()
        self.save_credentials(replace(creds, token=None, kind="anonymous", user_id=None, expires_at=None))


def resolve_base_url(option: str | None, store: Store, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    configured = store.config().get("cloud_url")
    for candidate in (option, configured if isinstance(configured, str) else None, env.get("NEMO_API_URL")):
        if candidate:
            return candidate.rstrip("/")
    return VENDOR_URL


def env_token(env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return env.get("NEMO_TOKEN") or None
