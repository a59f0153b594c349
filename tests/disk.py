"""A full disk, for the tests and the chaos bed that need one."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def fill_disk(disk: Path) -> Path:
    """Take every free byte of the filesystem at ``disk`` (a node may keep writing meanwhile);
    the filler file, whose removal frees them. Any error but a full disk is raised."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY)
    try:
        for size in (1 << 20, 1 << 12, 1):
            block = bytes(size)
            try:
                while True:
                    os.write(fd, block)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    return filler
