"""A local web page to explore trained generators: `python scripts/demo.py [model=NAME | ckpt_path=PATH]`.

The page opens on the bundled conditional GAN (or the model asked for) with its digits already drawn, and
offers every bundled model. Pick a digit (conditional model) or a categorical code and the two continuous codes
(InfoGAN), a seed and how many samples; move along a few noise coordinates with sliders (the digits are redrawn as
they move); morph between two digits (codes) or two seeds. Gradio is an optional extra (`pip install -e ".[demo]"`).
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

from gan_lightning import checks
from gan_lightning import tool_config as conf
from gan_lightning.errors import UserError, fail
from gan_lightning.pretrained import BUNDLED, bundled_name
from gan_lightning.sampling.outputs import frame_pictures, sample_grid, save_gif
from gan_lightning.sampling.sampler import Sampler

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported: no telemetry, no version check
try:
    import gradio as gr
except ImportError as e:
    raise ImportError(f'the demo needs Gradio, an optional extra: pip install -e ".[demo]" ({e})') from None

DIRECTIONS = 4  # sliders, one per noise coordinate 0..3
DIRECTION_RANGE = 3.0
CODE_SLIDERS, CODE_RANGE = 2, 2.0  # an InfoGAN's continuous codes, beyond their training range [-1, 1]


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """uint8 (H, W) -> (H * scale, W * scale), each pixel a scale x scale block."""
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Explorer:
    """What the page's controls do, without Gradio: checks a request, answers with pictures.

    `samplers` are the models the page offers, by the label it shows; each request names its model, so
    several visitors can look at different models at once."""

    def __init__(self, samplers: dict[str, Sampler], max_samples: int = 100, max_frames: int = 48, scale: int = 3):
        assert samplers, "at least one model"
        self.samplers, self.max_samples, self.max_frames, self.scale = samplers, max_samples, max_frames, scale
        self.gif_dir = Path(tempfile.mkdtemp(prefix="gan-lightning-demo-"))  # Gradio copies what it serves
        atexit.register(shutil.rmtree, self.gif_dir, ignore_errors=True)

    def sampler(self, model: str) -> Sampler:
        if not isinstance(model, str) or model not in self.samplers:
            raise UserError(f"model must be one of {', '.join(self.samplers)}, got {model!r}")
        return self.samplers[model]

    def title(self, model: str) -> str:
        return f"## gan-lightning: {self.sampler(model).describe()}"

    def _int(self, name: str, value, low: int, high: int) -> int:
        # the range first: NaN and infinities fail it, and only then is int() safe
        if not _is_number(value) or not low <= value <= high or value != int(value):
            raise UserError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
        return int(value)

    def _digit(self, sampler: Sampler, value, name: str = "digit") -> int | None:
        """'all' or a class name (a digit, a garment; an InfoGAN's code number), as the page's radio buttons give
        them (strings); an unconditional model ignores it."""
        if value is None or value == "all" or not sampler.conditional:
            return None
        name = name.replace("digit", sampler.label_key)
        try:
            return sampler.check_digit(int(value) if isinstance(value, str) and sampler.label_key == "code" else value,
                                       name)
        except ValueError:
            raise UserError(f"{name} must be 'all' or a {sampler.class_word}, got {value!r}") from None

    def samples(self, model, digit, seed, n, *offsets, continuous=None) -> np.ndarray:
        """The grid of n samples of `seed` (one row per digit or code for 'all'), moved along the noise coordinates;
        an InfoGAN's continuous codes at `continuous` (the others ignore it)."""
        sampler = self.sampler(model)
        digit, seed = self._digit(sampler, digit), self._int("seed", seed, 0, checks.MAX_SEED)
        values = None
        if sampler.continuous and continuous is not None:
            if not all(_is_number(v) and -CODE_RANGE <= v <= CODE_RANGE for v in continuous):
                raise UserError(f"the continuous codes must be from {-CODE_RANGE} to {CODE_RANGE}, got {continuous!r}")
            values = sampler.check_continuous([float(v) for v in continuous][: sampler.continuous])
        n = self._int("samples", n, 1, self.max_samples)
        moves = {}
        for index, amount in enumerate(offsets):
            if not _is_number(amount) or not -DIRECTION_RANGE <= amount <= DIRECTION_RANGE:
                raise UserError(f"z[{index}] must be from {-DIRECTION_RANGE} to {DIRECTION_RANGE}, got {amount!r}")
            moves[index] = float(amount)
        images = sampler.explore(seed, digit, n, moves, values)
        labels = None
        if sampler.conditional:
            labels = np.full(n, digit) if digit is not None else np.arange(n) % sampler.num_classes
        return upscale(sample_grid(images, labels, sampler.num_classes), self.scale)

    def morph(self, model, between: str, digit, digit_to, seed, seed_to, frames) -> str:
        """A GIF (its path) from one digit to another in the style of `seed`, or from `seed` to `seed_to`."""
        sampler = self.sampler(model)
        seed, frames = self._int("seed", seed, 0, checks.MAX_SEED), self._int("frames", frames, 2, self.max_frames)
        if between == "digits" and sampler.conditional:
            start, end = self._digit(sampler, digit), self._digit(sampler, digit_to, "to digit")
            if start is None or end is None:
                raise UserError("a morph between digits needs two digits, not 'all'")
            animation = sampler.morph(seed, seed, start, end, frames)
        else:
            seed_to = self._int("to seed", seed_to, 0, checks.MAX_SEED)
            animation = sampler.morph(seed, seed_to, self._digit(sampler, digit), None, frames)
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


def build(explorer: Explorer, first: str) -> "gr.Blocks":
    """The page, opening on model `first` with its digits already drawn; every control redraws at once."""
    sampler = explorer.sampler(first)
    digits = ["all", *sampler.class_choices()]  # the dataset's class names (MNIST: "0" to "9"), or code numbers
    # delete_cache: Gradio's copies of the pictures it served go after an hour
    with gr.Blocks(title="gan-lightning", analytics_enabled=False, delete_cache=(600, 3600)) as page:
        title = gr.Markdown(explorer.title(first), elem_id="title")
        with gr.Row():
            with gr.Column(scale=1):
                model = gr.Dropdown(list(explorer.samplers), value=first, label="model", elem_id="model",
                                    visible=len(explorer.samplers) > 1)
                digit = gr.Radio(digits, value="all", label=sampler.class_word, visible=sampler.conditional,
                                 elem_id="digit")
                codes = [
                    gr.Slider(-CODE_RANGE, CODE_RANGE, value=0.0, step=0.1, label=f"continuous code {i}",
                              visible=sampler.continuous > i, elem_id=f"c{i}")
                    for i in range(CODE_SLIDERS)
                ]
                seed = gr.Number(value=0, precision=0, label="seed", elem_id="seed")
                n = gr.Slider(1, explorer.max_samples, value=20, step=1, label="samples", elem_id="samples-n")
                offsets = [
                    gr.Slider(-DIRECTION_RANGE, DIRECTION_RANGE, value=0.0, step=0.1, label=f"z[{i}]",
                              elem_id=f"z{i}")
                    for i in range(min(DIRECTIONS, min(s.noise_dim for s in explorer.samplers.values())))
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
                digit_to = gr.Radio(digits[1:], value=digits[min(2, len(digits) - 1)], label=f"to {sampler.class_word}",
                                    visible=sampler.conditional)
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

        def switch(name):
            chosen = explorer.sampler(name)
            conditional, key, choices = chosen.conditional, chosen.class_word, chosen.class_choices()
            return (explorer.title(name), gr.update(visible=conditional, label=key, choices=["all", *choices], value="all"),
                    gr.update(visible=conditional, label=f"to {key}", choices=choices, value=choices[min(1, len(choices) - 1)]),
                    gr.update(choices=["digits", "seeds"] if conditional else ["seeds"],
                              value="digits" if conditional else "seeds"),
                    *[gr.update(visible=chosen.continuous > i) for i in range(CODE_SLIDERS)])

        def draw_samples(model, digit, seed, n, *controls):
            return explorer.samples(model, digit, seed, n, *controls[CODE_SLIDERS:],
                                    continuous=controls[:CODE_SLIDERS])

        draw = _answer(draw_samples)
        sample_inputs = [model, digit, seed, n, *codes, *offsets]
        page.load(draw, sample_inputs, grid)
        generate.click(draw, sample_inputs, grid)
        model.change(_answer(switch), [model], [title, digit, digit_to, between, *codes]).then(
            draw, sample_inputs, grid)
        for control in (digit, seed, n, *codes, *offsets):  # redraw as a control moves; a burst of moves draws the last
            control.change(draw, sample_inputs, grid, trigger_mode="always_last", show_progress="hidden")
        morph.click(_answer(explorer.morph), [model, between, digit, digit_to, seed, seed_to, frames], animation)
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


def model_label(name: str, sampler: Sampler) -> str:
    """What the page's model picker calls bundled model `name`: its variant, and its dataset when not MNIST."""
    learnt = "" if sampler.dataset.name == "mnist" else f", {sampler.dataset.title}"
    return f"{sampler.name}{learnt} ({name})"


def open_models(source: str | Path, device) -> tuple[str, dict[str, Sampler]]:
    """The model to open (a bundled one or the user's own) and every bundled model, by the label the page shows.
    -> (the first one's label, {label: sampler})."""
    opened = Sampler.load(source, device)
    first = model_label(source, opened) if bundled_name(source) else f"your model: {Path(source).name}"
    samplers = {first: opened}
    for name in BUNDLED:
        if name != source:
            sampler = Sampler.load(name, device)
            samplers[model_label(name, sampler)] = sampler
    return first, samplers


def serve(cfg: DictConfig, block: bool = True) -> "gr.Blocks":
    """Check the demo config (see conf/demo.yaml), load the checkpoint and serve the page."""
    host, port = checks.text(cfg, "host"), checks.integer(cfg, "port", 1, 65535)
    max_samples, max_frames = checks.integer(cfg, "max_samples", 1, 10_000), checks.integer(cfg, "max_frames", 2, 1000)
    scale = checks.integer(cfg, "scale", 1, 16)
    device = conf.device(cfg, "device")
    check_address(host, port)
    first, samplers = open_models(conf.generator_source(cfg), device)
    page = build(Explorer(samplers, max_samples, max_frames, scale), first)
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
