"""The report's output folder: written completely or not at all, and never at the expense of files it did not write.

Everything goes to a hidden temporary folder beside the target, renamed into place only when
complete (and removed on any failure, Ctrl-C or SIGTERM included). A folder this tool wrote
carries a marker file, ``.graphbatch-output``, listing the files it wrote. An existing target is
replaced only when it is empty or holds exactly what its marker lists; a folder with other
files (or no marker: not ours) is refused unless ``overwrite``, and even then only the report's
own files are replaced there: nothing else in it is deleted.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["OutputDir", "MARKER", "OutputError"]

MARKER = ".graphbatch-output"


class OutputError(Exception):
    """The output folder cannot be written as asked (the message says why)."""


def _listed(folder: Path) -> set[str] | None:
    """The files the marker of ``folder`` lists (``None``: no readable marker, so not ours)."""
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        return set(data["files"]) if data.get("tool") == "graphbatch" else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


class OutputDir:
    """Write into a hidden temp folder beside ``target``; move it into place on :meth:`commit`.

    Args:
        target: the output folder.
        overwrite: allow writing into a folder that holds files this tool did not write (they are kept).
    """

    def __init__(self, target: str | os.PathLike, overwrite: bool) -> None:
        self.target = Path(target).expanduser().absolute()
        self.merge = False
        if self.target.exists():
            if not self.target.is_dir():
                raise OutputError(f"--out {self.target} exists and is not a folder")
            entries = {p.name for p in self.target.iterdir()}
            listed = _listed(self.target)
            foreign = entries - ({MARKER} | listed) if listed is not None else entries
            if foreign:
                if not overwrite:
                    what = "is not a graphbatch output" if listed is None else \
                        f"holds files graphbatch did not write ({', '.join(sorted(foreign)[:3])})"
                    raise OutputError(f"--out {self.target} exists, is not empty and {what}; choose another "
                                      f"folder or pass --overwrite (which keeps those files)")
                self.merge = True
        parent = self.target.parent
        if parent.exists() and not parent.is_dir():
            raise OutputError(f"cannot write the output folder {self.target}: {parent} is not a folder")
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.partial-", dir=parent))
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; the result should look like mkdir's
        except OSError as exc:
            raise OutputError(f"cannot write the output folder {self.target}: {exc.strerror or exc}") from None

    def path(self, name: str) -> Path:
        return self.tmp / name

    def commit(self) -> Path:
        """Write the marker, then move the finished folder (or, when merging, its files) into place."""
        files = sorted(p.name for p in self.tmp.iterdir())
        (self.tmp / MARKER).write_text(json.dumps({"tool": "graphbatch", "files": files}) + "\n", encoding="utf-8")
        if self.merge:
            for name in files + [MARKER]:
                os.replace(self.tmp / name, self.target / name)
            os.rmdir(self.tmp)
            return self.target
        backup = None
        if self.target.exists():
            backup = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.old-", dir=self.target.parent))
            os.rmdir(backup)
            os.rename(self.target, backup)
        try:
            os.rename(self.tmp, self.target)
        except OSError:
            if backup is not None:
                os.rename(backup, self.target)
            raise
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)  # held only what graphbatch wrote (checked above)
        return self.target

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
