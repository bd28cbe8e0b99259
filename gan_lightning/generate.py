"""`python scripts/generate.py [model=NAME | ckpt_path=PATH] [key=value ...]`: samples, morphs, sweeps, walks and training
progressions written to files (keys: conf/generate.yaml, or `--help`).

Every value, the checkpoint and the requested digits are checked before anything is written, and the files
are renamed into place only once all are complete: an error leaves `out` as it was.
"""

import shutil
import sys
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from PIL import Image

from gan_lightning import checks
from gan_lightning import tool_config as conf
from gan_lightning.errors import UserError, fail
from gan_lightning.files import Staging, Stopped, check_writable, stop_on_signals
from gan_lightning.sampling.outputs import (
    LABEL_DTYPE,
    IdxWriter,
    NpzWriter,
    frame_pictures,
    progress_gif,
    sample_grid,
    save_gif,
    save_png,
    strip,
)
from gan_lightning.sampling.sampler import MAX_SPAN, Sampler

MODES = ("sample", "morph", "sweep", "walk", "codes", "progress")


def write_samples(
    sampler: Sampler,
    out: Path,
    n: int,
    seed: int = 0,
    digit: int | None = None,
    batch_size: int = 256,
    grid_max: int = 100,
    png: bool = False,
    idx: bool = False,
    continuous=None,
) -> list[Path]:
    """n samples -> out/samples.npz (`images` uint8 (n, H, W), `labels` int64 (n,) if conditional: the digits,
    or an InfoGAN's categorical codes, asked for; an InfoGAN's `continuous` codes as in `Sampler.samples`), the preview
    grid out/samples.png (first `grid_max`), optionally out/png/*.png and MNIST IDX files. Generated
    `batch_size` at a time and streamed to the files, labels too: memory is bounded by the batch, whatever n.
    Returns the paths written."""
    out = Path(out)
    conditional = sampler.conditional
    width = max(5, len(str(n - 1)))
    written = [out / "samples.png", out / "samples.npz"]
    with Staging() as staging:
        writers = {"npz": NpzWriter(staging.file(out / "samples.npz"), n, sampler.image_size, conditional)}
        if idx:
            written.append(out / "samples-images-idx3-ubyte")
            writers["idx_images"] = IdxWriter(staging.file(written[-1]), (n, *sampler.image_size))
            if conditional:
                written.append(out / "samples-labels-idx1-ubyte")
                writers["idx_labels"] = IdxWriter(staging.file(written[-1]), (n,))
        png_dir = None
        if png:
            written.append(out / "png")
            png_dir = staging.folder(written[-1])
        preview: list[tuple[np.ndarray, np.ndarray | None]] = []
        start = 0
        try:
            for images, labels in sampler.samples(n, seed, digit, batch_size, continuous):
                writers["npz"].write(images, labels)
                if idx:
                    writers["idx_images"].write(images)
                    if conditional:
                        writers["idx_labels"].write(labels)
                for i, image in enumerate(images if png_dir else ()):
                    name = f"{start + i:0{width}d}" + (f"_{labels[i]}" if conditional else "")
                    Image.fromarray(image, mode="L").save(png_dir / f"{name}.png")
                if start < grid_max:
                    keep = grid_max - start
                    preview.append((images[:keep], None if labels is None else labels[:keep]))
                start += len(images)
        except BaseException:
            for writer in writers.values():
                writer.abandon()
            raise
        for writer in writers.values():
            writer.close()
        images = np.concatenate([images for images, _ in preview])
        labels = np.concatenate([labels for _, labels in preview]) if conditional else None
        save_png(sample_grid(images, labels, sampler.num_classes), staging.file(out / "samples.png"))
    return written


def write_animation(
    name: str, frames: np.ndarray, out: Path, fps: float = 12, scale: int = 4, strip_frames: np.ndarray | None = None
) -> list[Path]:
    """Frames (F, B, H, W) -> out/<name>.gif (B images side by side per frame), out/<name>.png (the frames left to
    right, or `strip_frames`) and out/<name>.npz (`frames`, uint8). Returns the paths written."""
    out = Path(out)
    paths = [out / f"{name}.gif", out / f"{name}.png", out / f"{name}.npz"]
    with Staging() as staging:
        save_gif(frame_pictures(frames, scale), staging.file(paths[0]), fps)
        save_png(strip(frames if strip_frames is None else strip_frames), staging.file(paths[1]))
        np.savez_compressed(staging.file(paths[2]), frames=frames)
    return paths


def _out_dir(cfg: DictConfig) -> Path:
    """`out`, a folder that exists or can be made (nothing above it a file, permission to write)."""
    return check_writable(checks.text(cfg, "out"), "out", folder=True)


# samples deflated to measure how much the files of a request take
PROBE_SAMPLES = 256
# the smallest a PNG file of one image can be besides its pixel data: signature, IHDR, IDAT and IEND chunks
PNG_OVERHEAD = 57


def files_size(sampler: Sampler, n: int, seed: int, digit: int | None, png: bool, idx: bool) -> int:
    """About how many bytes the files of `n` samples take at most while they are written. How much the npz's
    deflate shrinks the images depends on the generator (1.5 to 1.9 times for briefly trained ones, 4.9 for real
    MNIST digits), so the first samples of the request are generated and deflated at the npz's level to measure it.
    IDX files are not compressed. A conditional model's labels take 8 bytes a sample in a temporary file until
    they are deflated into the npz (where they take next to nothing: digits in turn, or one digit), and 1 in IDX."""
    images, _ = next(sampler.samples(min(n, PROBE_SAMPLES), seed, digit, PROBE_SAMPLES))
    deflated = len(zlib.compress(images.tobytes(), zlib.Z_DEFAULT_COMPRESSION)) / len(images)  # bytes per image
    pixels = int(np.prod(sampler.image_size))
    labels = (LABEL_DTYPE.itemsize + (1 if idx else 0)) if sampler.conditional else 0
    return round(n * (deflated + (pixels if idx else 0) + labels + (deflated + PNG_OVERHEAD if png else 0)))


def check_space(out: Path, size: int) -> None:
    """Refuse a request whose files need more than the free space on the disk of `out` (`size` bytes), rather than
    fill the disk and fail."""
    folder = next(p for p in (out, *out.parents) if p.is_dir())
    free = shutil.disk_usage(folder).free
    if size > free:
        try:  # a folder that cannot be written (read-only, or no disk at all such as /proc) reports no free space
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as e:
            raise UserError(f"out={out}: {folder} cannot be written ({e.strerror or e}); choose another out") from None
        raise UserError(f"n is too large: the samples need about {size / 1e9:.3g} GB, and {free / 1e9:.3g} GB are "
                        f"free in {folder}; ask for fewer")


def _class_request(cfg: DictConfig, label_key: str, digit_key: str) -> tuple[str, int | str | None]:
    """`label` (any dataset's class: an index or a name) or `digit` (MNIST's word for it), not both -> (the key given,
    its value)."""
    label, digit = conf.class_request(cfg, label_key), conf.class_request(cfg, digit_key)
    if label is not None and digit not in (None, "all"):
        raise UserError(f"{label_key}={label} and {digit_key}={digit} ask for the same thing: give one of them")
    return (label_key, label) if label is not None else (digit_key, digit)


def generate(cfg: DictConfig) -> list[Path]:
    """Do what a generate config asks (see conf/generate.yaml); returns the paths written."""
    mode = checks.text(cfg, "mode", MODES)
    if mode == "progress":
        return [progress_gif(checks.text(cfg, "run_dir"), fps=checks.positive_number(cfg, "fps", 100))]

    # every value first, then the checkpoint, then what depends on the model: nothing written until all pass
    out = _out_dir(cfg)
    device = conf.device(cfg, "device")
    source = conf.generator_source(cfg)
    seed = checks.seed(cfg, "seed")
    digit_key, digit = _class_request(cfg, "label", "digit")
    n, batch_size = checks.integer(cfg, "n", 1), checks.integer(cfg, "batch_size", 1)
    grid_max = checks.integer(cfg, "grid_max", 1)
    png, idx = checks.boolean(cfg, "png"), checks.boolean(cfg, "idx")
    frames, fps = checks.integer(cfg, "frames", 2, 1000), checks.positive_number(cfg, "fps", 100)
    scale = checks.integer(cfg, "scale", 1, 32)
    seed_to, (digit_to_key, digit_to) = checks.seed(cfg, "seed_to", optional=True), _class_request(cfg, "label_to",
                                                                                                    "digit_to")
    code, code_to = conf.class_request(cfg, "code"), conf.class_request(cfg, "code_to")
    continuous = conf.numbers(cfg, "continuous")
    direction, span = checks.integer(cfg, "direction", 0), checks.positive_number(cfg, "span", MAX_SPAN)
    code_index = checks.integer(cfg, "code_index", 0)

    sampler = Sampler.load(source, device)
    # an InfoGAN's categorical code takes the place of the digit
    digit = sampler.check_digit(code, "code") if code is not None else sampler.check_digit(digit, digit_key)
    digit_to = sampler.check_digit(code_to, "code_to") if code_to is not None else sampler.check_digit(digit_to,
                                                                                                        digit_to_key)
    values = sampler.check_continuous(continuous)
    if mode == "sample":
        check_space(out, files_size(sampler, n, seed, digit, png, idx))
        return write_samples(sampler, out, n, seed, digit, batch_size, grid_max, png, idx, values)
    if mode == "codes":
        figure = sampler.codes_figure(seed, code_index, frames)  # (codes, frames, H, W)
        return write_animation("codes", figure.transpose(1, 0, 2, 3), out, fps, scale)
    if mode == "morph":
        return write_animation("morph", sampler.morph(seed, seed_to, digit, digit_to, frames), out, fps, scale)
    if mode == "sweep":
        animation, digits = sampler.sweep(seed, frames)
        return write_animation("sweep", animation, out, fps, scale, strip_frames=digits[:, None])
    sampler.check_direction(direction)
    return write_animation("walk", sampler.walk(seed, direction, span, digit, frames), out, fps, scale)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if conf.wants_help(args):
        conf.print_help("generate", __doc__)
        return
    try:
        with stop_on_signals():
            paths = generate(conf.load_config("generate", args))
    except UserError as e:
        fail(e)
    except Stopped as e:
        where = "the files were written" if e.written else "nothing was written"
        print(f"{e}; {where}", file=sys.stderr)
        sys.exit(e.exit_code)
    for path in paths:
        print(f"wrote {path}")
