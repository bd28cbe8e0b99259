"""Writing digits to files: grids, strips, GIFs, .npz and MNIST IDX files.

Each command writes its files through one `gan_lightning.files.Staging`, so a failure midway leaves what was
there before untouched.
"""

import math
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from gan_lightning.errors import UserError
from gan_lightning.files import Staging

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
