"""Faults injected for real: a full disk (a small tmpfs), a read-only mount (a
read-only bind mount), a file nobody may write (chattr +i). Each is undone at the end
and skipped, with the reason, where the machine does not allow it."""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True)


@contextmanager
def small_disk(folder: Path, size: str = "1m"):
    """`folder` becomes a tmpfs of `size`: writes past it fail with ENOSPC."""
    folder.mkdir(parents=True, exist_ok=True)
    done = _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (not root?): {done.stderr.strip()}")
    try:
        yield folder
    finally:
        _run("umount", "-l", str(folder))


@contextmanager
def read_only_mount(source: Path, target: Path):
    """`target` shows `source` on a read-only bind mount."""
    target.mkdir(parents=True, exist_ok=True)
    done = _run("mount", "--bind", str(source), str(target))
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount (not root?): {done.stderr.strip()}")
    try:
        again = _run("mount", "-o", "remount,ro,bind", str(target))
        if again.returncode != 0:
            pytest.skip(f"cannot remount read-only: {again.stderr.strip()}")
        yield target
    finally:
        _run("umount", "-l", str(target))


@contextmanager
def immutable(path: Path):
    """Nobody, root included, may write `path` (chattr +i) while the block runs."""
    done = _run("chattr", "+i", str(path))
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not available here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        _run("chattr", "-i", str(path))


def fill(folder: Path) -> None:
    """Use up every free byte of the disk holding `folder`."""
    with open(folder / "filler", "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    os.sync()


def file_state(path: Path) -> tuple:
    """What a reading command must not change: the bytes, and the side files."""
    return (path.read_bytes(), sorted(p.name for p in path.parent.iterdir()))
