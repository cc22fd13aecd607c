"""File-system questions that never raise: a name too long for the OS is simply not a file.

(`Path.is_file()` raises OSError(ENAMETOOLONG) on Python 3.11 for a component over
NAME_MAX; a .circ file can name any path, so every check goes through here.)
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def not_regular_file(mode: int) -> str | None:
    """What a file of this `st_mode` is, in words, when it is not a regular file (None when
    it is one). Reading a named pipe blocks until a writer comes and a device may never
    end, so readers of .circ files refuse them from `stat` alone, without opening them."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "a special file"


def data_dir(repository_folder: str) -> Path:
    """A folder of the repository (`grammar`, `stdlib`) from a checkout or an editable
    install, else the copy a wheel installs inside the package (`circuitlang/_grammar`)."""
    package = Path(__file__).resolve().parent.parent  # circuitlang/
    checkout = package.parent / repository_folder
    return checkout if is_dir(checkout) else package / f"_{repository_folder}"


def source_lines(text: str) -> list[str]:
    """Lines as the parser counts them: split at `\\n` only (not form feeds or U+2028)."""
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def path_from(folder: Path, target: Path) -> str:
    """How a file in `folder` names `target`: relative to the folder, never bare (`./x`,
    so it reads as a path), or absolute when the two share nothing but the root
    (`../../../work/x` reads worse than `/work/x`)."""
    folder, target = folder.resolve(), target.resolve()
    if os.path.commonpath([folder, target]) == target.anchor:
        return target.as_posix()
    rel = Path(os.path.relpath(target, folder)).as_posix()
    return rel if "/" in rel else f"./{rel}"
