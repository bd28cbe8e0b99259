"""A local web page to explore a trained generator: `python scripts/demo.py ckpt_path=PATH [port=7860]`.

Pick a digit (conditional model), a seed and how many samples; move along a few noise coordinates with
sliders; morph between two digits or two seeds. Gradio is an optional extra (`pip install -e ".[demo]"`).
The page is served to this machine only (127.0.0.1) unless host= says otherwise, with Gradio's analytics
off and no share link: nothing leaves the machine. A request out of range gets a message in the page,
never a crash.
"""

import atexit
import errno
import os
import shutil
import signal
import socket
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from gan_lightning.errors import UserError, fail
from gan_lightning.sampling import config as conf
from gan_lightning.sampling.outputs import frame_pictures, sample_grid, save_gif
from gan_lightning.sampling.sampler import Sampler

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported: no telemetry, no version check
try:
    import gradio as gr
except ImportError as e:
    raise ImportError(f'the demo needs Gradio, an optional extra: pip install -e ".[demo]" ({e})') from None

DIRECTIONS = 4  # sliders, one per noise coordinate 0..3
DIRECTION_RANGE = 3.0
MAX_SEED = 2**31 - 1


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """uint8 (H, W) -> (H * scale, W * scale), each pixel a scale x scale block."""
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Explorer:
    """What the page's buttons do, without Gradio: checks a request, answers with pictures."""

    def __init__(self, sampler: Sampler, max_samples: int = 100, max_frames: int = 48, scale: int = 3):
        self.sampler, self.max_samples, self.max_frames, self.scale = sampler, max_samples, max_frames, scale
        self.gif_dir = Path(tempfile.mkdtemp(prefix="gan-lightning-demo-"))  # Gradio copies what it serves
        atexit.register(shutil.rmtree, self.gif_dir, ignore_errors=True)

    def _int(self, name: str, value, low: int, high: int) -> int:
        # the range first: NaN and infinities fail it, and only then is int() safe
        if not _is_number(value) or not low <= value <= high or value != int(value):
            raise UserError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
        return int(value)

    def _digit(self, value, name: str = "digit") -> int | None:
        """'all' or a digit, as the page's radio buttons give them (strings)."""
        if value is None or value == "all":
            return None
        try:
            return self.sampler.check_digit(int(value) if isinstance(value, str) else value, name)
        except ValueError:
            raise UserError(f"{name} must be 'all' or a digit, got {value!r}") from None

    def samples(self, digit, seed, n, *offsets) -> np.ndarray:
        """The grid of n samples of `seed` (one row per digit for 'all'), moved along the noise coordinates."""
        digit, seed = self._digit(digit), self._int("seed", seed, 0, MAX_SEED)
        n = self._int("samples", n, 1, self.max_samples)
        moves = {}
        for index, amount in enumerate(offsets):
            if not _is_number(amount) or not -DIRECTION_RANGE <= amount <= DIRECTION_RANGE:
                raise UserError(f"z[{index}] must be from {-DIRECTION_RANGE} to {DIRECTION_RANGE}, got {amount!r}")
            moves[index] = float(amount)
        images = self.sampler.explore(seed, digit, n, moves)
        labels = None
        if self.sampler.conditional:
            labels = np.full(n, digit) if digit is not None else np.arange(n) % self.sampler.num_classes
        return upscale(sample_grid(images, labels, self.sampler.num_classes), self.scale)

    def morph(self, between: str, digit, digit_to, seed, seed_to, frames) -> str:
        """A GIF (its path) from one digit to another in the style of `seed`, or from `seed` to `seed_to`."""
        seed, frames = self._int("seed", seed, 0, MAX_SEED), self._int("frames", frames, 2, self.max_frames)
        if between == "digits":
            if not self.sampler.conditional:
                raise UserError("this model is unconditional: morph between two seeds")
            start, end = self._digit(digit), self._digit(digit_to, "to digit")
            if start is None or end is None:
                raise UserError("a morph between digits needs two digits, not 'all'")
            animation = self.sampler.morph(seed, seed, start, end, frames)
        else:
            seed_to = self._int("to seed", seed_to, 0, MAX_SEED)
            animation = self.sampler.morph(seed, seed_to, self._digit(digit), None, frames)
        path = self.gif_dir / f"morph_{uuid.uuid4().hex}.gif"  # requests run in threads: one name each
        save_gif(frame_pictures(animation, self.scale), path, fps=12)
        return str(path)


def _answer(function):
    """A Gradio handler from an Explorer method: a request out of range becomes a message in the page."""

    def handler(*args):
        try:
            return function(*args)
        except UserError as e:
            raise gr.Error(str(e)) from None

    return handler


def build(explorer: Explorer) -> "gr.Blocks":
    sampler = explorer.sampler
    digits = ["all", *map(str, range(sampler.num_classes))]
    # delete_cache: Gradio's copies of the pictures it served go after an hour
    with gr.Blocks(title="gan-lightning", analytics_enabled=False, delete_cache=(600, 3600)) as page:
        gr.Markdown(f"## gan-lightning: {sampler.describe()}")
        with gr.Row():
            with gr.Column(scale=1):
                digit = gr.Radio(digits, value="all", label="digit", visible=sampler.conditional, elem_id="digit")
                seed = gr.Number(value=0, precision=0, label="seed", elem_id="seed")
                n = gr.Slider(1, explorer.max_samples, value=20, step=1, label="samples", elem_id="samples-n")
                offsets = [
                    gr.Slider(-DIRECTION_RANGE, DIRECTION_RANGE, value=0.0, step=0.1, label=f"z[{i}]")
                    for i in range(min(DIRECTIONS, sampler.noise_dim))
                ]
                generate = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column(scale=2):
                grid = gr.Image(
                    label="samples",
                    format="png",
                    type="numpy",
                    elem_id="grid",
                    interactive=False,
                    buttons=["download", "fullscreen"],
                )
        with gr.Row():
            with gr.Column(scale=1):
                between = gr.Radio(
                    ["digits", "seeds"] if sampler.conditional else ["seeds"],
                    value="digits" if sampler.conditional else "seeds",
                    label="morph between",
                )
                digit_to = gr.Radio(digits[1:], value="1", label="to digit", visible=sampler.conditional)
                seed_to = gr.Number(value=1, precision=0, label="to seed", elem_id="seed-to")
                frames = gr.Slider(2, explorer.max_frames, value=16, step=1, label="frames")
                morph = gr.Button("Morph", elem_id="morph")
            with gr.Column(scale=2):
                animation = gr.Image(
                    label="morph",
                    type="filepath",
                    elem_id="animation",
                    interactive=False,
                    buttons=["download", "fullscreen"],
                )

        sample_inputs = [digit, seed, n, *offsets]
        generate.click(_answer(explorer.samples), sample_inputs, grid)
        for slider in offsets:
            slider.release(_answer(explorer.samples), sample_inputs, grid)
        morph.click(_answer(explorer.morph), [between, digit, digit_to, seed, seed_to, frames], animation)
    return page


NETWORK_HINT = "use host=127.0.0.1 (this machine only) or host=0.0.0.0 (every network)"


def check_address(host: str, port: int) -> None:
    """Refuse a host this machine cannot serve on, or a port in use, before the server tries (and logs its own
    error beside ours)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError, ValueError) as e:  # socket.gaierror: no such name or address
        raise UserError(f"host={host}: not an address of this machine ({e.strerror or e}); {NETWORK_HINT}") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server's own socket does
        try:
            probe.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise UserError(f"port {port} is in use on {host}; choose another with port=N") from None
            raise UserError(f"cannot serve on host={host} ({e.strerror or e}); {NETWORK_HINT}") from None


def serve(cfg: DictConfig, block: bool = True) -> "gr.Blocks":
    """Check the demo config (see conf/demo.yaml), load the checkpoint and serve the page."""
    host, port = conf.text(cfg, "host"), conf.integer(cfg, "port", 1, 65535)
    max_samples, max_frames = conf.integer(cfg, "max_samples", 1, 10_000), conf.integer(cfg, "max_frames", 2, 1000)
    scale = conf.integer(cfg, "scale", 1, 16)
    device = conf.device(cfg, "device")
    check_address(host, port)
    sampler = Sampler.load(conf.text(cfg, "ckpt_path"), device)
    page = build(Explorer(sampler, max_samples, max_frames, scale))
    if block:  # `kill` ends the demo like Ctrl-C does: through exit, so the morph GIFs' folder is removed
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        page.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block, quiet=False)
    except OSError as e:  # the port was free a moment ago (check_address): another program has taken it since
        reason = str(e).split(". ")[0]
        raise UserError(f"cannot serve on {host}:{port} ({reason}); choose another port with port=N") from None
    return page


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if conf.wants_help(args):
        conf.print_help("demo", __doc__)
        return
    try:
        serve(conf.load_config("demo", args))
    except UserError as e:
        fail(e)
