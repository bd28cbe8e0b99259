"""Writing files so that no failure leaves a torn one, and making folders, with a failure as a one-line `UserError`.

Every file goes to a temporary name in its final folder, is flushed and fsynced, and is renamed into place
(atomic on one filesystem) only once all the files written together are complete (`Staging`); the folder is
fsynced so the renames survive a power cut. A crash or a kill at any moment leaves the old files or the new ones.
`write_file` and `write_json` are the one-file case.
"""

import json
import math
import os
import shutil
import signal
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Self

from gan_lightning.errors import UserError


def check_writable(path: str | Path, key: str, folder: bool = True, example: str = "") -> Path:
    """`path` can be made or replaced: as a folder (`folder`) or as a file (`example`: a file name to suggest when it
    is a folder). It is not of the other kind, nothing above it is a file, and the nearest folder of it that
    exists can be written to. Returns it as a `Path`."""
    path = Path(path)
    try:
        if "\0" in str(path):
            raise ValueError("a NUL character")
        existing = next(p for p in (path, *path.parents) if p.exists())
    except (OSError, ValueError) as e:  # a name too long...
        raise UserError(f"{key}={str(path)!r} is not a usable path ({e}); choose another") from None
    if existing == path and folder and not path.is_dir():
        raise UserError(f"{key}={path} is a file; give a folder to write into")
    if existing == path and not folder and path.is_dir():
        raise UserError(f"{key}={path} is a folder; give a file path" + (f", e.g. {path / example}" if example else ""))
    if existing != path and not existing.is_dir():
        raise UserError(f"{key}={path}: {existing} is a file, so nothing can be written under it; choose another path")
    writable = existing if existing.is_dir() else existing.parent
    if not os.access(writable, os.W_OK | os.X_OK):
        raise UserError(f"{key}={path}: no permission to write in {writable}; choose another path")
    return path


def make_folder(path: str | Path, key: str) -> Path:
    """`mkdir -p path`, with a failure (permissions, a read-only or special file system) as a `UserError`."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{key}: cannot create the folder {path} ({e.strerror or e}); choose another path") from None
    return path


class Stopped(Exception):
    """SIGTERM or Ctrl-C arrived while `stop_on_signals` was on; `written`: after the files were renamed into place."""

    def __init__(self, signum: int, written: bool = False):
        self.signal_name, self.written = signal.Signals(signum).name, written
        super().__init__(f"stopped by {self.signal_name}")

    @property
    def exit_code(self) -> int:
        return 128 + signal.Signals[self.signal_name]  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


class _Busy:
    active = False  # a Staging is renaming its files into place, or removing them
    pending: int | None = None  # the signal that came meanwhile


def _raise_stopped(signum: int, frame) -> None:
    if _Busy.active:  # neither is ever cut in half: the signal waits until it is done
        _Busy.pending = signum
        return
    raise Stopped(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """While in the block (main thread only), SIGTERM and Ctrl-C raise `Stopped`, so that the `Staging` being
    written removes its temporary files and any folder it made. (Python's default SIGTERM ends the process at
    once, leaving them; its KeyboardInterrupt is caught as well, but ends in a traceback.) A signal the process
    was started to ignore (SIGINT in a job a non-interactive shell runs with &) stays ignored."""
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, _raise_stopped)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class Staging:
    """Output paths under temporary names in their final folders, renamed into place together on `commit`
    (or on leaving the `with` block without an error); on an error they are removed instead.

        with Staging() as staging:
            save_png(grid, staging.file(out / "samples.png"))
    """

    def __init__(self, key: str = "out"):
        self.key = key  # the setting that named the folders, for messages
        self.token = uuid.uuid4().hex[:8]
        self.pending: list[tuple[Path, Path]] = []  # (temporary, final)
        self.made: list[Path] = []  # the folders this staging made, deepest first: removed again on discard

    def _make_parent(self, final: Path) -> None:
        missing = []
        for folder in final.parents:
            if folder.exists():
                break
            missing.append(folder)
        make_folder(final.parent, self.key)
        self.made = missing + self.made

    def file(self, final: Path, keep_suffix: bool = True) -> Path:
        """The temporary path to write `final`'s content to. `keep_suffix`: it ends like `final` (image writers read
        the format from it); else in `.tmp-<token>`, so that no glob for `final`'s kind (`*.ckpt`) picks it up."""
        final = Path(final)
        if final.is_dir():
            raise UserError(f"{final} is a folder; it cannot be replaced by a file")
        self._make_parent(final)
        suffix = final.suffix if keep_suffix else ""
        temporary = final.with_name(f".{final.stem if keep_suffix else final.name}.tmp-{self.token}{suffix}")
        self.pending.append((temporary, final))
        return temporary

    def folder(self, final: Path) -> Path:
        final = Path(final)
        if final.exists() and not final.is_dir():
            raise UserError(f"{final} is a file; it cannot be replaced by a folder")
        self._make_parent(final)
        temporary = final.with_name(f".{final.name}.tmp-{self.token}")
        temporary.mkdir()
        self.pending.append((temporary, final))
        return temporary

    def commit(self) -> None:
        for temporary, _ in self.pending:  # the content reaches the disk before any name points at it
            _fsync(temporary)
        _Busy.active = True
        try:
            for temporary, final in self.pending:
                if temporary.is_dir() and final.is_dir():  # swap whole folders: no stale files from an older run
                    old = final.with_name(f".{final.name}.old-{self.token}")
                    final.rename(old)
                    temporary.rename(final)
                    shutil.rmtree(old)
                else:
                    os.replace(temporary, final)
            for folder in {final.parent for _, final in self.pending}:  # the renames themselves
                _fsync(folder)
            self.pending.clear()
            self.made.clear()
        finally:
            _Busy.active = False
            signum, _Busy.pending = _Busy.pending, None
        if signum is not None:
            raise Stopped(signum, written=True)

    def discard(self) -> None:
        """Remove the temporary files and the folders made for them (called on an error, or on `Stopped`: a signal
        that comes meanwhile is dropped, the command is ending already)."""
        _Busy.active = True
        try:
            for temporary, _ in self.pending:
                if temporary.is_dir():
                    shutil.rmtree(temporary, ignore_errors=True)
                else:
                    temporary.unlink(missing_ok=True)
            self.pending.clear()
            for folder in self.made:  # `out` and the folders above it that did not exist before
                try:
                    folder.rmdir()
                except OSError:  # not empty: something else was put there meanwhile
                    continue
            self.made.clear()
        finally:
            _Busy.active, _Busy.pending = False, None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def _fsync(path: Path) -> None:
    """Flush a file's content, or a folder's entries (not the files inside it), to the disk (a folder is opened
    read-only, as fsync allows on Linux)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_file(path: str | Path, content: bytes | str | Callable[[IO[bytes]], Any], key: str = "out") -> Path:
    """Write one file atomically: `content` as bytes, as UTF-8 text, or by a function given the open binary file
    (`lambda file: torch.save(obj, file)`). `key` names the setting the path came from, for messages."""
    path = Path(path)
    with Staging(key) as staging:
        temporary = staging.file(path, keep_suffix=False)
        with open(temporary, "xb") as file:
            if callable(content):
                content(file)
            else:
                file.write(content.encode() if isinstance(content, str) else content)
    return path


def write_json(path: str | Path, content: Any, key: str = "out") -> Path:
    """`content` as indented, strict JSON, atomically: a NaN or infinite number is refused in one line (json.dumps
    would write `NaN`, which JSON readers reject)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{key}={path} is a folder; give a file path for the JSON file")
    return write_file(path, json_text(content, path), key)


def json_text(content: Any, path: str | Path) -> str:
    """`content` as indented, strict JSON text (for the file at `path`, which a refusal names)."""
    try:
        return json.dumps(content, indent=2, allow_nan=False) + "\n"
    except ValueError:
        raise UserError(f"the content for {path} holds NaN or infinite numbers, so it was not written: "
                        f"{', '.join(non_finite(content)) or 'somewhere'}") from None


def non_finite(value: Any, name: str = "") -> list[str]:
    """The dotted names of the NaN or infinite numbers in nested dicts and lists."""
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in non_finite(item, f"{name}.{key}".lstrip("."))]
    if isinstance(value, (list, tuple)):
        return [found for i, item in enumerate(value) for found in non_finite(item, f"{name}[{i}]")]
    return [name] if isinstance(value, float) and not math.isfinite(value) else []
