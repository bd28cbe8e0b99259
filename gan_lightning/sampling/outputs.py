"""Writing digits to files: grids, strips, GIFs, .npz and MNIST IDX files.

Every file is written under a temporary name in its final folder and renamed into place only once all of
them are complete (`Staging`), so a failure midway leaves what was there before untouched.
"""

import math
import os
import re
import shutil
import signal
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import numpy as np
from PIL import Image

from gan_lightning.config import make_folder
from gan_lightning.errors import UserError

PAD = 2  # pixels between the images of a grid, as in the training grids (torchvision's make_grid)
LABEL_DTYPE = np.dtype("<i8")  # the npz's labels: int64, little-endian whatever the machine
COPY_CHUNK = 2**16  # bytes copied at a time from the labels' temporary file into the npz


# ---- pictures ----------------------------------------------------------------------------------------------


def tile(images: np.ndarray, ncols: int, nrows: int | None = None) -> np.ndarray:
    """uint8 images (N, H, W) -> one grid (rows * (H + 2) + 2, ncols * (W + 2) + 2), row by row, black padding.
    Cells past N stay black."""
    n, h, w = images.shape
    nrows = nrows if nrows is not None else max(1, math.ceil(n / ncols))
    grid = np.zeros((nrows * (h + PAD) + PAD, ncols * (w + PAD) + PAD), dtype=np.uint8)
    for i, image in enumerate(images[: nrows * ncols]):
        row, col = divmod(i, ncols)
        y, x = PAD + row * (h + PAD), PAD + col * (w + PAD)
        grid[y : y + h, x : x + w] = image
    return grid


def sample_grid(images: np.ndarray, labels: np.ndarray | None, num_classes: int = 0) -> np.ndarray:
    """The preview grid of samples: one row per digit when there are labels of several digits, else square."""
    if labels is None or num_classes == 0 or len(np.unique(labels)) == 1:
        return tile(images, ncols=max(1, math.ceil(math.sqrt(len(images)))))
    rows = [images[labels == digit] for digit in range(num_classes)]
    ncols = max(len(row) for row in rows)
    h, w = images.shape[1:]
    cells = np.zeros((num_classes * ncols, h, w), dtype=np.uint8)
    for digit, row in enumerate(rows):
        cells[digit * ncols : digit * ncols + len(row)] = row
    return tile(cells, ncols=ncols, nrows=num_classes)


def strip(frames: np.ndarray) -> np.ndarray:
    """Animation frames (F, B, H, W) as one picture: frames left to right, the B images of a frame top to bottom."""
    f, b, h, w = frames.shape
    return tile(frames.transpose(1, 0, 2, 3).reshape(f * b, h, w), ncols=f, nrows=b)


def frame_pictures(frames: np.ndarray, scale: int = 1) -> list[Image.Image]:
    """Animation frames (F, B, H, W) -> one picture per frame, its B images side by side, `scale` times bigger."""
    pictures = []
    for frame in frames:
        picture = Image.fromarray(tile(frame, ncols=len(frame)), mode="L")
        if scale > 1:
            picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
        pictures.append(picture)
    return pictures


def save_png(picture: np.ndarray | Image.Image, path: Path) -> None:
    image = picture if isinstance(picture, Image.Image) else Image.fromarray(picture, mode="L")
    image.save(path, format="PNG")


def frame_ms(fps: float) -> int:
    """How long a GIF shows each frame at `fps`, in the whole hundredths of a second GIF counts in."""
    return 10 * max(1, round(100 / fps))


def save_gif(pictures: list[Image.Image], path: Path, fps: float, last_frame_s: float | None = None) -> None:
    """An animated GIF that loops forever; `last_frame_s` holds the last frame longer. GIF times are whole
    hundredths of a second: 12 fps plays at 12.5. (Pillow merges identical consecutive frames into one longer.)"""
    duration = [frame_ms(fps)] * len(pictures)
    if last_frame_s is not None:
        duration[-1] = 10 * max(1, round(100 * last_frame_s))
    first, *rest = pictures
    first.save(path, format="GIF", save_all=True, append_images=rest, duration=duration, loop=0)


# ---- arrays ------------------------------------------------------------------------------------------------


class NpzWriter:
    """An .npz that `np.load` reads as {"images": uint8 (N, H, W), "labels": int64 (N,)}, written batch by batch in
    memory bounded by a batch, whatever N. The images stream into the archive. A zip archive is written one member at
    a time, so the labels (8 bytes a sample) stream into an anonymous temporary file beside it (on the same disk,
    and gone with the process however it ends) and are copied into the archive at the end."""

    def __init__(self, path: Path, n: int, image_size: tuple[int, int], with_labels: bool):
        self.n, self.written = n, 0
        # closed by close() or abandon()
        self.labels = tempfile.TemporaryFile(dir=Path(path).parent) if with_labels else None  # noqa: SIM115
        self.archive = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)
        self.member = self.archive.open("images.npy", "w", force_zip64=True)
        header = {"descr": np.dtype(np.uint8).str, "fortran_order": False, "shape": (n, *image_size)}
        np.lib.format.write_array_header_1_0(self.member, header)

    def write(self, images: np.ndarray, labels: np.ndarray | None) -> None:
        self.member.write(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
        self.written += len(images)
        if self.labels is not None:
            assert labels is not None and len(labels) == len(images)
            self.labels.write(np.ascontiguousarray(labels, dtype=LABEL_DTYPE).tobytes())

    def close(self) -> None:
        self.member.close()
        if self.written != self.n:
            raise RuntimeError(f"npz header says {self.n} images, {self.written} were written")
        if self.labels is not None:
            self.labels.seek(0)
            with self.archive.open("labels.npy", "w", force_zip64=True) as member:
                header = {"descr": LABEL_DTYPE.str, "fortran_order": False, "shape": (self.n,)}
                np.lib.format.write_array_header_1_0(member, header)
                shutil.copyfileobj(self.labels, member, COPY_CHUNK)
            self.labels.close()
        self.archive.close()

    def abandon(self) -> None:
        """Close the file unfinished (it is about to be removed): whatever state a signal left the archive in, a
        failure to close it is no news."""
        for close in (self.member.close, self.archive.close, *([self.labels.close] if self.labels else [])):
            try:
                close()
            except Exception:  # noqa: BLE001, S110
                pass


class IdxWriter:
    """An MNIST-format IDX file of uint8 values (idx3 for images (N, H, W), idx1 for labels (N,)), streamed."""

    def __init__(self, path: Path, shape: tuple[int, ...]):
        self.file = open(path, "wb")  # noqa: SIM115 written batch by batch, closed by close()
        self.file.write(bytes([0, 0, 0x08, len(shape)]))  # zero, zero, uint8 type code, number of dimensions
        for size in shape:
            self.file.write(int(size).to_bytes(4, "big"))

    def write(self, values: np.ndarray) -> None:
        self.file.write(np.ascontiguousarray(values, dtype=np.uint8).tobytes())

    def close(self) -> None:
        self.file.close()

    abandon = close


# ---- writing atomically ------------------------------------------------------------------------------------


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

    def file(self, final: Path) -> Path:
        final = Path(final)
        if final.is_dir():
            raise UserError(f"{final} is a folder; it cannot be replaced by a file")
        self._make_parent(final)
        temporary = final.with_name(f".{final.stem}.tmp-{self.token}{final.suffix}")
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


# ---- training progression ----------------------------------------------------------------------------------

EPOCH_GRID = re.compile(r"epoch_(\d+)\.png")


def progress_gif(run_dir: str | Path, fps: float = 4.0, last_frame_s: float = 2.0) -> Path:
    """The fixed-noise grids of every epoch (`samples/epoch_*.png` of a run, as SampleGrid saves them) as one
    animated GIF, `samples/progress.gif`; the final grid stays on screen for `last_frame_s`. `run_dir` is the
    run's output folder or its samples folder. Returns the GIF's path."""
    run_dir = Path(run_dir)
    samples = run_dir / "samples" if (run_dir / "samples").is_dir() else run_dir
    if not samples.is_dir():
        raise UserError(f"{run_dir}: no such run folder")
    grids = sorted((int(m.group(1)), p) for p in samples.iterdir() if (m := EPOCH_GRID.fullmatch(p.name)))
    if not grids:
        raise UserError(f"no epoch_*.png sample grids in {samples}; is it a training run's folder?")
    pictures = []
    for _, path in grids:
        with Image.open(path) as picture:
            pictures.append(picture.convert("L"))
    width, height = max(p.width for p in pictures), max(p.height for p in pictures)
    for i, picture in enumerate(pictures):  # grids of another size (a resumed run with other settings)
        if picture.size != (width, height):
            canvas = Image.new("L", (width, height))
            canvas.paste(picture)
            pictures[i] = canvas
    path = samples / "progress.gif"
    with Staging("run_dir") as staging:
        save_gif(pictures, staging.file(path), fps, last_frame_s)
    return path
