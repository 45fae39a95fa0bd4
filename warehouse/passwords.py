"""Passwords of the warehouse's login roles, kept under `.warehouse/secrets/` (a folder only
its owner can open; each file mode 0600), and the pgpass file libpq reads them from.

`secrets/<role>.password` holds one role's password (one line); `secrets/pgpass` is
rewritten from those files at every `warehouse db start` and `warehouse db password`, with
one line per role for each address the embedded server answers on.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

SUFFIX = ".password"
PGPASS = "pgpass"


def secrets_dir(state: Path) -> Path:
    folder = state / "secrets"
    folder.mkdir(mode=0o700, exist_ok=True)
    folder.chmod(0o700)
    return folder


def generate() -> str:
    """A new random password: 32 URL-safe characters (192 bits), safe in SQL literals,
    URLs and pgpass lines."""
    return secrets.token_urlsafe(24)


def password_file(state: Path, role: str) -> Path:
    if not role or "/" in role or role.startswith("."):
        raise ValueError(f"not a role name for a password file: {role!r}")
    return secrets_dir(state) / f"{role}{SUFFIX}"


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner only, replacing it atomically."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    temporary.replace(path)


def write_password(state: Path, role: str, password: str) -> Path:
    path = password_file(state, role)
    _write_private(path, password + "\n")
    return path


def read_password(state: Path, role: str) -> str | None:
    path = password_file(state, role)
    if not path.exists():
        return None
    return path.read_text(encoding="utf-8").strip() or None


def forget_password(state: Path, role: str) -> None:
    password_file(state, role).unlink(missing_ok=True)


def stored_roles(state: Path) -> list[str]:
    return sorted(path.name[: -len(SUFFIX)] for path in secrets_dir(state).glob(f"*{SUFFIX}"))


def _field(value: str) -> str:
    """A pgpass field: backslash and colon escaped."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


def pgpass_path(state: Path) -> Path:
    return secrets_dir(state) / PGPASS


def write_pgpass(state: Path, hosts: Iterable[str], port: int) -> Path:
    """The pgpass file: every stored role's password for each of `hosts` on `port`."""
    lines = []
    for role in stored_roles(state):
        password = read_password(state, role)
        if password is None:
            continue
        for host in dict.fromkeys(hosts):
            lines.append(":".join(_field(part) for part in (host, str(port), "*", role, password)))
    path = pgpass_path(state)
    _write_private(path, "".join(line + "\n" for line in lines))
    return path
