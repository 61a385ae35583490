"""Files and folders only their owner can read: the simulator's database, the bar store."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def private_dir(directory: Path) -> None:
    """Create ``directory`` (and missing parents) readable by the owner only."""
    missing = []
    d = directory
    while not d.exists():
        missing.append(d)
        if d.parent == d:
            break
        d = d.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)


def private_file(path: Path) -> None:
    """Create ``path`` as 0600, or take group/other permissions off an existing one."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            path.chmod(mode & 0o700)
    else:
        os.close(fd)
