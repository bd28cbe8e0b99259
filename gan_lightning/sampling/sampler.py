"""A trained generator as a source of digits: batches of samples, morphs, digit sweeps and latent walks.

Images come out as uint8 (B, H, W) with 0 = black background, like MNIST itself. What a generator takes besides its
noise is one categorical input of `num_classes` values, fed one-hot: the digit of a conditional GAN (`digit=`), or an
InfoGAN's categorical code (`code=`), which comes with `continuous` codes (`continuous=`, drawn from Uniform(-1, 1)
per sample when not given). A code is not a label: which code draws which digit is whatever training found.
"""

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gan_lightning import checks, pretrained
from gan_lightning.data.datasets import IMAGE_FOLDER, ImageDataset, ImageFolder, get_dataset
from gan_lightning.data.scaling import to_uint8
from gan_lightning.errors import UserError
from gan_lightning.options import VARIANTS
from gan_lightning.sampling import latent

# what one call may ask for: sample() returns one array (a million 28x28 images are 784 MB; iterate over samples()
# for more), an animation at most MAX_FRAMES frames, a batch at most MAX_BATCH images
MAX_SAMPLES, MAX_FRAMES, MAX_BATCH = 1_000_000, 1000, 65536
MAX_SPAN = 100.0  # how far a walk or a code sweep goes, in units of the noise's standard deviation


def check_device(device: Any) -> torch.device:
    """A device the API was given, as torch's: one that exists here."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"device must be 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={str(device)!r}: there is no CUDA GPU on this machine (or torch was built without "
                        "CUDA); use device='cpu'")
    if device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"device must be 'cpu', 'cuda', 'cuda:N' or a torch.device, got {str(device)!r}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError("device='mps': Apple's Metal GPU is not available here; use device='cpu'")
    return device


def generator_dataset(info: dict[str, Any]) -> ImageDataset:
    """The dataset a generator learnt, as its file records it: a published one by name, or an image folder by its
    class names (its files are found again with `at(data_dir)`)."""
    name = info.get("dataset", "mnist")
    if name != IMAGE_FOLDER:
        return get_dataset(name)
    names = info.get("class_names") or [str(i) for i in range(info["num_classes"])]
    return ImageFolder(title="image folder", class_names=tuple(names), train_size=0, held_out_start=0,
                       image_size=info["image_shape"][-1])


class Sampler:
    """Wraps a generator (eval mode) and what describes it (`info` from `pretrained.load`). Its public methods are
    a door for users' values: a wrong type or range is a `UserError` in the words of the command-line tools."""

    def __init__(self, generator: nn.Module, info: dict[str, Any], device: str | torch.device = "cpu"):
        self.device = check_device(device)
        self.generator = generator.to(self.device).eval()
        self.info = dict(info)
        codes = info.get("codes")  # an InfoGAN's latent codes, which G reads after the noise
        self.continuous: int = codes["continuous"] if codes else 0
        self.num_classes: int = codes["categorical"] if codes else info["num_classes"]
        self.noise_dim: int = info["noise_dim"] - (self.num_classes + self.continuous if codes else 0)
        # an InfoGAN trained on Uniform(-1, 1) noise: each normal draw z becomes erf(z / sqrt(2))
        self.uniform_noise: bool = bool(codes) and codes.get("noise") == "uniform"
        self.conditional: bool = self.num_classes > 0
        # what the categorical input is asked for by: a digit (conditional GAN) or a code (InfoGAN)
        self.label_key: str = "code" if codes else "digit"
        # samples asked for digits carry labels the quality metrics may read (label accuracy, CAS); codes do not
        self.asks_digits: bool = self.conditional and not codes
        self.image_size: tuple[int, int] = tuple(info["image_shape"][1:])
        # what it learnt: its feature network judges the samples, its class names name them
        self.dataset = generator_dataset(info)
        # one generator call at a time: the demo answers requests from several threads
        self._lock = threading.Lock()
        self.source: str | None = None  # the bundled model, checkpoint or folder it came from, for messages

    @classmethod
    def load(cls, source: str | Path, device: str | torch.device = "cpu") -> "Sampler":
        """`source`: a bundled model's name (`pretrained.BUNDLED`), a folder written by `save_pretrained`, a
        training checkpoint or an exported `.pt` file."""
        device = check_device(device)
        generator, info = pretrained.load(source, map_location=device)
        sampler = cls(generator, info, device)
        sampler.source = str(source)
        return sampler

    @property
    def name(self) -> str:
        """The model in words: Vanilla GAN, DCGAN, conditional GAN."""
        return VARIANTS.get(self.info["variant"], self.info["variant"])  # a variant of one's own: its name

    def save_pretrained(self, folder: str | Path, dtype: str = "float32", overwrite: bool = False) -> Path:
        """Write this generator as a folder (config.json + model.safetensors) that `load_generator` and a model
        hub take as it is; an earlier export there is replaced only with `overwrite=True` (other files stay).
        Returns the folder."""
        if not isinstance(folder, str | Path):
            raise UserError(f"folder must be a path, got {folder!r}")
        if dtype not in pretrained.DTYPES:
            raise UserError(f"dtype={dtype!r} is not one of: {', '.join(pretrained.DTYPES)}")
        if not isinstance(overwrite, bool):
            raise UserError(f"overwrite must be True or False, got {overwrite!r}")
        return pretrained.save_pretrained(self.generator, self.info["variant"], self.info["spec"], folder, dtype,
                                          self.info.get("codes"), overwrite, dataset=self.info["dataset"],
                                          class_names=self.info.get("class_names"))

    def _uint8(self, output: torch.Tensor) -> np.ndarray:
        """`to_uint8`, refusing NaN or infinite output, which the cast to uint8 would turn into digits of garbage."""
        if not torch.isfinite(output).all():
            source = f" of {self.source}" if self.source is not None else ""
            raise UserError(f"the generator{source} produces NaN or infinite values: its weights are broken (a run "
                            "that diverged?); use an earlier checkpoint")
        return to_uint8(output)

    @property
    def class_word(self) -> str:
        """What its categorical input is called where it is shown: a code (InfoGAN), or a class of its dataset in the
        dataset's word (MNIST: a digit)."""
        return "code" if self.label_key == "code" else self.dataset.class_word

    def class_choices(self) -> list[str]:
        """What it can be asked for, as a picker shows it: the dataset's class names, or the codes' numbers."""
        if self.label_key == "code":
            return [str(code) for code in range(self.num_classes)]
        return list(self.dataset.class_names)

    def describe(self) -> str:
        plural = self.class_word + ("es" if self.class_word.endswith("s") else "s")
        classes = f"{self.num_classes} {plural}, " if self.conditional else ""
        classes += f"{self.continuous} continuous codes, " if self.continuous else ""
        return f"{self.name} ({classes}noise size {self.noise_dim})"

    # ---- checks ------------------------------------------------------------------------------------------

    def check_digit(self, digit: Any, key: str = "digit") -> int | None:
        """A class request (a code request, `key` "code...", of an InfoGAN) -> the class index, or None for "all"
        (every class in turn; nothing to choose when unconditional). A class is its index or its name in the dataset
        (`label="Sneaker"`, any case); `digit` and `label` are the same request."""
        if digit is None or digit == "all":
            return None
        names = [name.lower() for name in self.dataset.class_names]
        if isinstance(digit, str) and not key.startswith("code") and self.label_key == "digit" and self.conditional:
            if digit.lower() not in names and names != [str(i) for i in range(len(names))]:
                raise UserError(f"{key}={digit!r} is not a class of {self.dataset.title}: give one of "
                                f"{', '.join(self.dataset.class_names)}, its index from 0 to {self.num_classes - 1}, "
                                "or all")
            if digit.lower() in names:
                return names.index(digit.lower())
        wanted = "code" if key.startswith("code") else "digit"
        if self.conditional and wanted != self.label_key:
            asked = key.replace(wanted, self.label_key, 1) if key.startswith(wanted) else self.label_key
            raise UserError(f"{key}={digit}: an InfoGAN's categorical codes are not digits (which code draws which digit "
                            f"is learnt, not given); ask for {asked}={digit}" if self.label_key == "code" else
                            f"{key}={digit}: this model takes digits, not codes; ask for {asked}={digit}")
        if not self.conditional:
            raise UserError(f"{key}={digit}: this checkpoint's model is unconditional, it cannot be asked for a {wanted}")
        if isinstance(digit, bool) or not isinstance(digit, int) or not 0 <= digit < self.num_classes:
            kind = wanted if wanted == "code" or self.dataset.title == "MNIST" else "class index"
            raise UserError(f"{key} must be 'all' or a {kind} from 0 to {self.num_classes - 1}, got {digit!r}")
        return digit

    def check_continuous(self, continuous: Any) -> torch.Tensor | None:
        """A request for an InfoGAN's continuous codes: None (drawn per sample), or one number in [-2, 2] for each
        (beyond the training range of [-1, 1], as the InfoGAN paper's figures go) -> a tensor (continuous,)."""
        if continuous is None:
            return None
        if not self.continuous:
            raise UserError(f"continuous={continuous!r}: this model has no continuous codes (an InfoGAN has)")
        values = list(continuous) if isinstance(continuous, (list, tuple)) else None
        if values is None or len(values) != self.continuous or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and -2 <= v <= 2 for v in values):
            raise UserError(f"continuous must be {self.continuous} numbers from -2 to 2 (one for each continuous code), "
                            f"or null to draw them, got {continuous!r}")
        return torch.tensor(values, dtype=torch.float32)

    def check_direction(self, direction: Any) -> int:
        if isinstance(direction, bool) or not isinstance(direction, int) or not 0 <= direction < self.noise_dim:
            raise UserError(f"direction must be a noise coordinate from 0 to {self.noise_dim - 1}, got {direction!r}")
        return direction

    # ---- images -----------------------------------------------------------------------------------------

    @torch.no_grad()
    def images(self, z: torch.Tensor, labels: torch.Tensor | None = None,
               continuous: torch.Tensor | None = None) -> np.ndarray:
        """uint8 images (B, H, W) for noise z (B, noise_dim) and labels: digit (or code) indices (B,) or float label
        vectors (B, num_classes), e.g. a mixture of two one-hot labels; ignored for an unconditional model. An
        InfoGAN's continuous codes (B, continuous) are 0 unless given."""
        z = z.to(self.device, torch.float32)
        if self.uniform_noise:
            z = torch.erf(z / 2**0.5)
        with self._lock:
            if not self.conditional:
                return self._uint8(self.generator(z, None))
            if labels is None:
                raise ValueError("a conditional generator needs labels: digits (B,) or label vectors (B, K)")
            labels = labels.to(self.device)
            if self.label_key == "code":  # G reads [z, one-hot(code), continuous codes] as one input
                vectors = labels.float() if labels.is_floating_point() else F.one_hot(labels, self.num_classes).float()
                values = torch.zeros(len(z), self.continuous) if continuous is None else continuous
                return self._uint8(self.generator(torch.cat([z, vectors, values.to(z)], dim=1), None))
            if not labels.is_floating_point():
                return self._uint8(self.generator(z, labels))
            return self._uint8(self.generator(z, labels.float()))

    def _batched(self, z: torch.Tensor, labels: torch.Tensor | None, batch_size: int,
                 continuous: torch.Tensor | None = None) -> np.ndarray:
        parts = [
            self.images(z[i : i + batch_size], None if labels is None else labels[i : i + batch_size],
                        None if continuous is None else continuous[i : i + batch_size])
            for i in range(0, len(z), batch_size)
        ]
        return np.concatenate(parts)

    def sample(self, n: int, digit: int | str | None = None, seed: int = 0, batch_size: int = 256,
               code: int | None = None, continuous: tuple[float, ...] | None = None,
               label: int | str | None = None) -> np.ndarray:
        """n images as uint8 (n, H, W), 0 = black background like MNIST. A conditional model draws class `label`
        (its index or its name: `label=7`, `label="Sneaker"`; `digit=` is the same for MNIST), or with None every class
        in turn (image i is class i mod 10); an InfoGAN draws categorical code `code`
        (None: code i mod 10 for image i) with the continuous codes `continuous` (None: drawn per sample). The same
        seed, the same noise, whatever the codes: two calls that differ only in a code differ only in what it does."""
        n = checks.integer_value(n, "n", 1)
        if n > MAX_SAMPLES:
            raise UserError(f"n={n}: sample() returns one array of at most {MAX_SAMPLES} images; iterate over "
                            "samples(n, ...) for more, a batch at a time")
        if label is not None and digit is not None:
            raise UserError(f"label={label!r} and digit={digit!r} ask for the same thing: give one of them")
        asked = self.check_digit(code, "code") if code is not None else \
            self.check_digit(label, "label") if label is not None else self.check_digit(digit)
        values = self.check_continuous(continuous)
        return np.concatenate([images for images, _ in self.samples(n, seed, asked, batch_size, values)])

    def samples(
        self, n: int, seed: int = 0, digit: int | None = None, batch_size: int = 256,
        continuous: torch.Tensor | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """n samples as batches of (uint8 images (b, H, W), int64 labels (b,) or None when unconditional).

        Sample i has the noise of index i of `seed`, whatever the batch size. A conditional model gives `digit`,
        or with digit=None every digit in turn (sample i is digit i mod 10: balanced labels); an InfoGAN's `digit`
        is its categorical code, and its continuous codes are `continuous` (continuous,) for every sample, or when
        None sample i's own draw from Uniform(-1, 1), from a stream of the seed apart from the noise's.
        """
        n, seed = checks.integer_value(n, "n", 1), checks.seed_value(seed)
        batch_size = checks.integer_value(batch_size, "batch_size", 1, MAX_BATCH)
        start = 0
        draws = latent.uniform_stream(seed, self.continuous, n, batch_size) if self.continuous else None
        for z in latent.noise_stream(seed, self.noise_dim, n, batch_size):
            labels = values = None
            if self.conditional:
                index = torch.arange(start, start + len(z))
                labels = torch.full_like(index, digit) if digit is not None else index % self.num_classes
            if draws is not None:
                drawn = next(draws)
                values = continuous.expand(len(z), -1) if continuous is not None else drawn
            start += len(z)
            yield self.images(z, labels, values), None if labels is None else labels.numpy()

    def codes_figure(self, seed: int = 0, code_index: int = 0, steps: int = 9, span: float = 2.0) -> np.ndarray:
        """The InfoGAN paper's figure: one row per categorical code, the columns sweeping continuous code
        `code_index` from -span to +span, the other continuous codes at 0, one style (the noise of `seed`) throughout.
        -> uint8 (codes, steps, H, W)."""
        if self.label_key != "code" or not self.continuous:
            raise UserError("mode=codes needs an InfoGAN, whose codes it sweeps; this model has none")
        if isinstance(code_index, bool) or not isinstance(code_index, int) or not 0 <= code_index < self.continuous:
            raise UserError(f"code_index must be a continuous code from 0 to {self.continuous - 1}, got {code_index!r}")
        seed, steps = checks.seed_value(seed), checks.integer_value(steps, "steps", 2, MAX_FRAMES)
        span = checks.positive_number_value(span, "span", MAX_SPAN)
        z = latent.noise(seed, self.noise_dim)[0].expand(self.num_classes * steps, -1)
        codes = torch.arange(self.num_classes).repeat_interleave(steps)
        values = torch.zeros(self.num_classes * steps, self.continuous)
        values[:, code_index] = torch.linspace(-span, span, steps).repeat(self.num_classes)
        return self._batched(z, codes, 256, values).reshape(self.num_classes, steps, *self.image_size)

    # ---- animations: frames (F, B, H, W), B images side by side in each frame --------------------------------

    def _frames(self, z_path: torch.Tensor, label_path: torch.Tensor | None, batch_size: int = 256) -> np.ndarray:
        """Frames for a path of noise (F, D) and labels: None means every digit side by side (conditional) or
        no label; else digits (F,) or float label vectors (F, K), one image per frame."""
        frames = len(z_path)
        if not self.conditional:
            return self._batched(z_path, None, batch_size)[:, None]
        if label_path is None:
            digits = torch.arange(self.num_classes)
            z = z_path.repeat_interleave(self.num_classes, dim=0)  # (F * K, D), frame-major
            images = self._batched(z, digits.repeat(frames), batch_size)
            return images.reshape(frames, self.num_classes, *self.image_size)
        return self._batched(z_path, label_path, batch_size)[:, None]

    def _label_path(self, digit: int | None, digit_to: int | None, t: torch.Tensor) -> torch.Tensor | None:
        if digit is None:
            return None
        start = latent.label_vector(digit, self.num_classes)
        end = latent.label_vector(digit if digit_to is None else digit_to, self.num_classes)
        return latent.lerp(start, end, t)

    def morph(
        self,
        seed: int,
        seed_to: int | None = None,
        digit: int | None = None,
        digit_to: int | None = None,
        frames: int = 16,
    ) -> np.ndarray:
        """From (seed, digit) to (seed_to, digit_to): the noise along a slerp, the one-hot label along a line.

        seed_to defaults to `seed` when digit_to is given (one style, the digit changes), else to seed + 1.
        digit=None: every digit side by side (conditional), each with the same noise.
        """
        digit, digit_to = self.check_digit(digit), self.check_digit(digit_to, "digit_to")
        if digit_to is not None and digit is None:
            raise UserError("digit_to needs a start digit: set digit=D as well")
        seed, seed_to = checks.seed_value(seed), checks.seed_value(seed_to, "seed_to", optional=True)
        frames = checks.integer_value(frames, "frames", 2, MAX_FRAMES)
        if seed_to is None:
            seed_to = seed if digit_to is not None else (seed + 1) % (checks.MAX_SEED + 1)
        t = torch.linspace(0, 1, frames)
        z_path = latent.slerp(latent.noise(seed, self.noise_dim)[0], latent.noise(seed_to, self.noise_dim)[0], t)
        return self._frames(z_path, self._label_path(digit, digit_to, t))

    def sweep(self, seed: int, frames_per_digit: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """All the digits in one style (the noise of `seed`): (animation frames (F, 1, H, W) morphing 0 -> 1 ->
        ... -> 9, the ten digits (10, H, W))."""
        if not self.conditional:
            raise UserError("a digit sweep needs a conditional model; this checkpoint's model is unconditional")
        seed = checks.seed_value(seed)
        frames_per_digit = checks.integer_value(frames_per_digit, "frames_per_digit", 2, MAX_FRAMES)
        z = latent.noise(seed, self.noise_dim)[0]
        t = torch.linspace(0, 1, frames_per_digit)[:-1]  # each segment stops short of the next digit
        labels = [self._label_path(d, d + 1, t) for d in range(self.num_classes - 1)]
        labels.append(latent.label_vector(self.num_classes - 1, self.num_classes)[None])
        label_path = torch.cat(labels)
        frames = self._frames(z.expand(len(label_path), -1), label_path)
        digits = self.images(z.expand(self.num_classes, -1), torch.arange(self.num_classes))
        return frames, digits

    def walk(
        self, seed: int, direction: int = 0, span: float = 3.0, digit: int | None = None, frames: int = 16
    ) -> np.ndarray:
        """Along noise coordinate `direction`, from -span to +span around the noise of `seed`."""
        digit = self.check_digit(digit)
        seed, frames = checks.seed_value(seed), checks.integer_value(frames, "frames", 2, MAX_FRAMES)
        span = checks.positive_number_value(span, "span", MAX_SPAN)
        z = latent.noise(seed, self.noise_dim)[0]
        z_path = latent.walk(z, latent.axis(self.check_direction(direction), self.noise_dim), span, frames)
        return self._frames(z_path, None if digit is None else torch.full((frames,), digit))

    def explore(self, seed: int, digit: int | None, n: int, offsets: dict[int, float],
                continuous: torch.Tensor | None = None) -> np.ndarray:
        """n samples of `seed` (labels as in `samples`), each moved by offsets {noise coordinate: amount}, an
        InfoGAN's continuous codes at `continuous` (continuous,) (None: at 0): what the demo's sliders show.
        -> uint8 (n, H, W)."""
        seed, n = checks.seed_value(seed), checks.integer_value(n, "n", 1, MAX_BATCH)
        z = latent.noise(seed, self.noise_dim, n)
        for index, amount in offsets.items():
            z = z + amount * latent.axis(self.check_direction(index), self.noise_dim)
        labels = None
        if self.conditional:
            labels = torch.full((n,), digit) if digit is not None else torch.arange(n) % self.num_classes
        values = None if continuous is None else continuous.expand(n, -1)
        return self._batched(z, labels, 256, values)
