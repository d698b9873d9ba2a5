"""One snapshot of a temporary tree for the tests that assert a run left every file as it was."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def tree_snapshot(root: Path) -> dict[str, tuple[str, str]]:
    """Every entry below ``root``, links not followed: files by sha256, links by their target,
    folders by name (so a file, link or folder that appears, goes or changes shows)."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = Path(d) / n
            key = str(p.relative_to(root))
            if p.is_symlink():
                out[key] = ("link", os.readlink(p))
            elif p.is_file():
                out[key] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
            else:
                out[key] = ("dir", "")
    return out
