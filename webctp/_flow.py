"""CTP flow folders: where each session's API keeps its ``.con`` flow files.

Layout: ``<flow_dir>/<kind>/<user>-<hash>/s<slot>/``. The slot is the lowest one no live
session of this user holds in this process, so two sessions of one user never share flow files
(CTP overwrites them), and a user's next session reuses the folder (what RESUME needs).

Folders are created owner-only (0700). A user's folder that no live session holds and that
has not been written for ``ctp.flow_retention_days`` is removed by ``prune`` (run by the
service at start-up and hourly), so folders of one-off UserIDs do not pile up forever.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("webctp.flow")

KINDS = ("td", "md")

# Slots held by live sessions: (flow_dir, kind, user folder) -> slots.
_held: dict[tuple[str, str, str], set[int]] = {}


def safe_name(user: str) -> str:
    """A flow-folder name no client input can escape: sanitised prefix + hash."""
    digest = hashlib.sha256(user.encode("utf-8", "replace")).hexdigest()[:12]
    prefix = re.sub(r"[^A-Za-z0-9_]", "_", user)[:15] or "anonymous"
    return f"{prefix}-{digest}"


@dataclass(frozen=True)
class Slot:
    key: tuple[str, str, str]
    number: int
    path: Path


def _mkdir_private(folder: Path, root: Path) -> None:
    """Create ``folder`` (and its parents up to ``root``) with mode 0700."""
    missing = []
    p = folder
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for p in reversed(missing):
        p.mkdir(mode=0o700, exist_ok=True)
    if root.exists():
        os.chmod(root, 0o700)


def acquire(flow_dir: str, kind: str, user: str) -> Slot:
    """Hold the lowest free slot of this user and create its folder (0700)."""
    key = (flow_dir, kind, safe_name(user))
    used = _held.setdefault(key, set())
    number = next(i for i in range(len(used) + 1) if i not in used)
    used.add(number)
    folder = Path(flow_dir) / kind / key[2] / f"s{number}"
    try:
        _mkdir_private(folder, Path(flow_dir))
    except OSError:
        release(Slot(key, number, folder))
        raise
    return Slot(key, number, folder)


def release(slot: Slot) -> None:
    used = _held.get(slot.key)
    if used is not None:
        used.discard(slot.number)
        if not used:
            del _held[slot.key]


def _newest_mtime(folder: Path) -> float:
    newest = folder.stat().st_mtime
    for dirpath, _dirs, files in os.walk(folder):
        for name in [*files, "."]:
            try:
                newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime)
            except OSError:
                continue
    return newest


def prune(flow_dir: str, retention_s: float, now: float | None = None) -> int:
    """Remove user folders not held by a live session and untouched for ``retention_s``;
    returns how many were removed. Never raises for a folder it cannot read or remove."""
    now = time.time() if now is None else now
    removed = 0
    for kind in KINDS:
        base = Path(flow_dir) / kind
        try:
            users = list(base.iterdir())
        except OSError:
            continue
        for folder in users:
            if (flow_dir, kind, folder.name) in _held or not folder.is_dir():
                continue
            try:
                stale = now - _newest_mtime(folder) > retention_s
            except OSError:
                continue
            if stale:
                shutil.rmtree(folder, ignore_errors=True)
                removed += not folder.exists()
    if removed:
        log.info("event=flow_pruned folders=%d flow_dir=%s", removed, flow_dir)
    return removed
