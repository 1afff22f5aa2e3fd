"""Files that hold secrets (signing keys, the SQLite database) are readable by their owner only."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

log = logging.getLogger("waitgate.files")


def keep_private(path: Path) -> None:
    """Take group and other permissions off ``path`` if it exists and has any (logged)."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if current & 0o077:
        path.chmod(current & 0o700)
        log.warning(
            "%s was open to other users (mode %o): now owner only (%o)",
            path,
            current,
            current & 0o700,
            extra={"action": "files.permissions"},
        )
