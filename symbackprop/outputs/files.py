"""Writing outputs: every file whole or not at all, all of a command's files or none, and standard output checked.

:func:`write_outputs` first checks every path and writes every text to a
temporary file beside its target, and only when all of them are written
renames them over their targets; a failure (or Ctrl-C) on the way removes the
temporary files and leaves every target as it was.  A target that is not a
regular file (a device such as ``/dev/null``, a pipe) is written to directly,
after the files.  ``"-"`` is standard output, written last by
:func:`write_stdout`, which notices a short write (a full disk) that Python's
own buffered stream lets pass.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_outputs([("a\\n", folder / "a.tex"), ("b\\n", folder / "b.md")])
>>> sorted(p.name for p in folder.iterdir())
['a.tex', 'b.md']
>>> try:
...     write_outputs([("new\\n", folder / "a.tex"), ("x", folder / "missing" / "x.md")])
... except OutputError as err:
...     print(str(err).replace(str(folder), "FOLDER"))
cannot write 'FOLDER/missing/x.md': No such file or directory
>>> (folder / "a.tex").read_text()
'a\\n'
"""

from __future__ import annotations

import errno
import io
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Iterable

from ..errors import OutputError

__all__ = ["check_path", "write_outputs", "write_stdout"]


def _fail(path: object, reason: str) -> OutputError:
    return OutputError(f"cannot write {str(path)!r}: {reason}")


def check_path(path: str | Path) -> Path:
    """The real path ``path`` writes to; refuses, without writing, a name that cannot be a file.

    Refused: an empty name, a name that ends in a separator or is a folder, a
    file name longer than its file system takes, and a folder that does not
    exist or cannot be written to.
    """
    text = os.fspath(path)
    if not text:
        raise OutputError("cannot write '': an empty file name", hint="give a file name, or '-' for standard output")
    if text.endswith(("/", os.sep)) or (os.altsep and text.endswith(os.altsep)):
        raise _fail(text, "the name ends in a separator, so it names a folder, not a file")
    try:
        target = Path(os.path.realpath(text))
        if target.is_dir():
            raise _fail(text, "it is a folder")
        folder = target.parent
        if not folder.is_dir():
            raise _fail(text, os.strerror(errno.ENOENT) if not folder.exists() else "its folder is not a folder")
        try:
            longest = os.pathconf(folder, "PC_NAME_MAX")
        except (OSError, ValueError, AttributeError):  # not every system says
            longest = 255
        if len(os.fsencode(target.name)) > longest:
            raise _fail(text, f"{os.strerror(errno.ENAMETOOLONG)} (a file name has at most {longest} bytes here)")
        if not target.exists() and not os.access(folder, os.W_OK | os.X_OK):
            raise _fail(text, os.strerror(errno.EACCES))
    except OSError as err:
        if isinstance(err, OutputError):
            raise
        raise _fail(text, err.strerror or str(err)) from None
    return target


def _encoded(content: str | bytes) -> bytes:
    return content if isinstance(content, bytes) else content.encode("utf-8")


def write_outputs(items: Iterable[tuple[str | bytes, str | Path]]) -> None:
    """Write each ``(content, path)``: all files whole, or none of them (see the module's docstring)."""
    items = list(items)
    checked = [(content, path, None if os.fspath(path) == "-" else check_path(path)) for content, path in items]
    staged: list[tuple[Path, Path]] = []  # (temporary, target)
    direct: list[tuple[str | bytes, str | Path, Path]] = []
    try:
        for content, path, target in checked:
            if target is None:
                continue
            if target.exists() and not target.is_file():  # a device or a pipe: never replaced
                direct.append((content, path, target))
                continue
            temporary = target.with_name(f".{target.name[:64]}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
            try:
                # created like any new file (the umask applies), and only by us
                descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except OSError as err:
                raise _fail(path, err.strerror or str(err)) from None
            staged.append((temporary, target))
            try:
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(_encoded(content))
                if target.exists():
                    shutil.copymode(target, temporary)
            except OSError as err:
                raise _fail(path, err.strerror or str(err)) from None
        for temporary, target in staged:  # everything is written: now each file is replaced at once
            try:
                os.replace(temporary, target)
            except OSError as err:
                raise _fail(target, err.strerror or str(err)) from None
        staged.clear()
    finally:  # a failure, or Ctrl-C: no temporary file stays behind
        for temporary, _ in staged:
            try:
                temporary.unlink()
            except OSError:
                pass
    for content, path, target in direct:
        try:
            with open(target, "wb") as handle:
                handle.write(_encoded(content))
        except OSError as err:
            raise _fail(path, err.strerror or str(err)) from None
    for content, path, target in checked:
        if target is None:
            write_stdout(content)


def write_stdout(content: str | bytes) -> None:
    """Write ``content`` to standard output, all of it or an ``OSError`` (a text in its encoding).

    Python's buffered standard output accepts a short write, such as a full
    disk's, as if it were whole; the bytes go straight to the descriptor here,
    until every one is written.
    """
    stream = sys.stdout
    try:
        descriptor = stream.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):  # io.StringIO, pytest's capture
        descriptor = None
    if descriptor is None:
        buffer = getattr(stream, "buffer", None)
        if isinstance(content, bytes) and buffer is not None:  # bytes as they are, whatever the stream's encoding
            stream.flush()
            buffer.write(content)
            buffer.flush()
        else:
            stream.write(content if isinstance(content, str) else content.decode("utf-8"))
            stream.flush()
        return
    data = content if isinstance(content, bytes) else content.encode(stream.encoding or "utf-8",
                                                                       stream.errors or "strict")
    stream.flush()
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        if written == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]
