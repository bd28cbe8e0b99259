"""The browser demo: its handlers, its optional-extra import, and the real page in headless Chromium."""

import importlib
import importlib.util
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan_lightning.errors import UserError
from gan_lightning.sampling import Sampler
from gan_lightning.sampling.outputs import frame_ms

ROOT = Path(__file__).resolve().parents[1]
ENABLE = 'apt-get install chromium; pip install -e ".[dev,demo]"'
REQUIRE_BROWSER = os.environ.get("GAN_LIGHTNING_REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def needs(available: bool, what: str) -> None:
    """Skip when `what` is missing, saying how to enable the test; fail instead where the browser is required."""
    if available:
        return
    if REQUIRE_BROWSER:
        pytest.fail(f"{what} is missing and GAN_LIGHTNING_REQUIRE_BROWSER=1; install it: {ENABLE}")
    pytest.skip(f"{what} is missing; to run the browser test: {ENABLE}")


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def ckpt(trained_run, model: str = "cgan") -> Path:
    return trained_run(model) / "checkpoints" / "last.ckpt"


def gif_duration_ms(gif: Image.Image) -> int:
    """Total play time of a GIF: Pillow merges identical consecutive frames, but keeps their time."""
    total = 0
    for i in range(gif.n_frames):
        gif.seek(i)
        total += gif.info["duration"]
    return total


def test_without_gradio_the_import_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # what `import gradio` meets when it is not installed
    monkeypatch.delitem(sys.modules, "gan_lightning.demo", raising=False)
    with pytest.raises(ImportError) as error:
        importlib.import_module("gan_lightning.demo")
    message = str(error.value)
    assert 'pip install -e ".[demo]"' in message and "\n" not in message


@pytest.mark.slow
def test_without_gradio_the_script_fails_with_one_line():
    code = (
        "import runpy, sys; sys.modules['gradio'] = None; sys.argv = ['demo.py', 'ckpt_path=x'];"
        "runpy.run_path('scripts/demo.py', run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and 'pip install -e ".[demo]"' in line


@pytest.mark.slow
def test_handlers_answer_in_range_and_refuse_out_of_range(trained_run):
    if not installed("gradio"):
        pytest.skip('Gradio is missing; pip install -e ".[demo]"')
    from gan_lightning.demo import Explorer

    samplers = {"cgan": Sampler.load(ckpt(trained_run)), "vanilla": Sampler.load(ckpt(trained_run, "vanilla"))}
    explorer = Explorer(samplers, max_samples=30, max_frames=10, scale=2)
    grid = explorer.samples("cgan", "all", 0, 20, 0.0, 0.0, 0.0, 0.0)  # ten rows, one per digit, two columns
    assert grid.shape == ((10 * 30 + 2) * 2, (2 * 30 + 2) * 2) and grid.dtype == np.uint8
    moved = explorer.samples("cgan", "all", 0, 20, 2.5, 0.0, 0.0, 0.0)
    assert not np.array_equal(grid, moved)
    gif = Image.open(explorer.morph("cgan", "digits", "2", "5", 0, 1, 4))
    assert gif_duration_ms(gif) == 4 * frame_ms(12)  # 4 frames at 12 per second
    # the unconditional model: a square grid, and the digit controls (hidden for it) change nothing
    square = explorer.samples("vanilla", "7", 0, 16, 0.0, 0.0, 0.0, 0.0)
    assert square.shape == ((4 * 30 + 2) * 2, (4 * 30 + 2) * 2)
    np.testing.assert_array_equal(square, explorer.samples("vanilla", "all", 0, 16, 0.0, 0.0, 0.0, 0.0))
    assert Image.open(explorer.morph("vanilla", "digits", "2", "5", 0, 1, 3)).n_frames >= 2
    assert "Vanilla GAN" in explorer.title("vanilla") and "conditional GAN" in explorer.title("cgan")
    for request, message in [
        (lambda: explorer.samples("cgan", "all", 0, 31, 0, 0, 0, 0), "samples must be"),
        (lambda: explorer.samples("cgan", "11", 0, 5, 0, 0, 0, 0), "digit must be"),
        (lambda: explorer.samples("cgan", "3", -1, 5, 0, 0, 0, 0), "seed must be"),
        (lambda: explorer.samples("cgan", "3", 0, 5, 9.0, 0, 0, 0), "z[0] must be"),
        (lambda: explorer.samples("stylegan", "3", 0, 5, 0, 0, 0, 0), "model must be"),
        (lambda: explorer.morph("cgan", "digits", "all", "5", 0, 1, 4), "needs two digits"),
        (lambda: explorer.morph("cgan", "seeds", "3", "5", 0, 1, 11), "frames must be"),
    ]:
        with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
            request()


@pytest.mark.slow
def test_an_infogan_is_asked_for_codes_and_its_continuous_codes(trained_run):
    if not installed("gradio"):
        pytest.skip('Gradio is missing; pip install -e ".[demo]"')
    from gan_lightning.demo import Explorer

    explorer = Explorer({"infogan": Sampler.load(ckpt(trained_run, "infogan"))}, max_samples=30, scale=1)
    grid = explorer.samples("infogan", "all", 0, 20, 0.0, 0.0, continuous=(0.0, 0.0))  # one row per code
    assert grid.shape == (10 * 30 + 2, 2 * 30 + 2)
    turned = explorer.samples("infogan", "all", 0, 20, 0.0, 0.0, continuous=(2.0, 0.0))
    assert not np.array_equal(grid, turned)  # the continuous code's slider moves the digits
    threes = explorer.samples("infogan", "3", 0, 5, continuous=(0.0, -1.5))
    assert not np.array_equal(threes, explorer.samples("infogan", "3", 0, 5, continuous=(0.0, 1.5)))
    assert "InfoGAN (10 codes, 2 continuous codes" in explorer.title("infogan")
    with pytest.raises(UserError, match=r"the continuous codes must be from -2.0 to 2.0"):
        explorer.samples("infogan", "3", 0, 5, continuous=(2.5, 0.0))
    with pytest.raises(UserError, match="code must be 'all' or a code from 0 to 9"):
        explorer.samples("infogan", "10", 0, 5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def demo_server(trained_run, tmp_path):
    """The real `scripts/demo.py` serving the cGAN checkpoint on a free local port -> (url, checkpoint)."""
    needs(installed("gradio"), "Gradio")
    port = free_port()
    command = [sys.executable, "scripts/demo.py", f"ckpt_path={ckpt(trained_run)}", f"port={port}", "scale=2"]
    with open(tmp_path / "demo.log", "w") as log:  # the child keeps its own copy of the descriptor
        server = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"the demo exited with code {server.returncode}:\n{(tmp_path / 'demo.log').read_text()}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the demo did not answer on {url}:\n{(tmp_path / 'demo.log').read_text()}")
                time.sleep(0.5)
        yield url, ckpt(trained_run)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def browser_page(tmp_path):
    needs(installed("playwright"), "Playwright")
    needs(chromium() is not None, "Chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=chromium(), args=CHROMIUM_ARGS, headless=True
        )
        context.set_default_timeout(60_000)
        try:
            yield context.new_page()
        finally:
            context.close()


def shown_image(page, selector: str, replacing: str | None = None) -> tuple[Image.Image, str]:
    """The picture an <img> under `selector` shows once loaded (and, with `replacing`, once its src is another
    than that one), fetched from the page's server; and its src."""
    loaded = page.wait_for_function(
        """([selector, old]) => {
            const img = document.querySelector(selector);
            if (!img || !img.src || img.src === old || !img.complete || img.naturalWidth === 0) return null;
            return [img.src, img.naturalWidth, img.naturalHeight];
        }""",
        arg=[f"{selector} img", replacing],
    )
    src, width, height = loaded.json_value()
    picture = Image.open(io.BytesIO(page.request.get(src).body()))
    assert picture.size == (width, height)
    return picture, src


def test_the_page_opens_with_digits_and_redraws_as_controls_move(browser_page, demo_server):
    url, checkpoint = demo_server
    page = browser_page
    page.goto(url)
    from gan_lightning.demo import Explorer

    mine = "your model: last.ckpt"
    explorer = Explorer({mine: Sampler.load(checkpoint)}, scale=2)
    page.get_by_text("conditional GAN (10 digits, noise size 100)").first.wait_for()  # the model in words
    opened, src = shown_image(page, "#grid")  # drawn on opening: 20 samples, every digit, one row each
    np.testing.assert_array_equal(np.array(opened.convert("L")), explorer.samples(mine, "all", 0, 20, 0, 0, 0, 0))

    page.get_by_role("radio", name="7", exact=True).first.check()  # redrawn without pressing Generate
    picture, src = shown_image(page, "#grid", replacing=src)
    assert picture.size == ((5 * 30 + 2) * 2, (4 * 30 + 2) * 2)  # 20 sevens: a 5 x 4 grid, each pixel 2 x 2
    np.testing.assert_array_equal(np.array(picture.convert("L")), explorer.samples(mine, "7", 0, 20, 0, 0, 0, 0))

    page.locator("#z0 input[type=number]").fill("2.5")  # a slider moved: redrawn
    page.locator("#z0 input[type=number]").press("Enter")
    moved, src = shown_image(page, "#grid", replacing=src)
    np.testing.assert_array_equal(np.array(moved.convert("L")), explorer.samples(mine, "7", 0, 20, 2.5, 0, 0, 0))

    page.locator("#morph").click()  # from the 7 to the default 1, in the style of seed 0
    morph, _ = shown_image(page, "#animation")
    assert morph.size == ((1 * 30 + 2) * 2, (1 * 30 + 2) * 2)  # one digit a frame
    assert gif_duration_ms(morph) == 16 * frame_ms(12)  # 16 frames at 12 per second

    page.locator("#seed input").fill("-3")  # out of range: a message in the page, the server carries on
    page.locator("#generate").click()
    page.get_by_text("seed must be a whole number").first.wait_for()
    page.locator("#seed input").fill("4")
    page.locator("#generate").click()
    assert shown_image(page, "#grid", replacing=src)[0].size == picture.size


def test_the_page_offers_the_bundled_models(browser_page, demo_server):
    from gan_lightning.demo import model_label
    from gan_lightning.pretrained import BUNDLED

    url, _ = demo_server
    page = browser_page
    page.goto(url)
    _, src = shown_image(page, "#grid")
    name = BUNDLED[-1]
    page.locator("#model input").click()
    label = model_label(name, Sampler.load(name))
    page.get_by_role("option", name=label).click()
    page.get_by_text(f"gan-lightning: {Sampler.load(name).describe()}").first.wait_for()
    picture, _ = shown_image(page, "#grid", replacing=src)
    from gan_lightning.demo import Explorer

    expected = Explorer({label: Sampler.load(name)}, scale=2).samples(label, "all", 0, 20, 0, 0, 0, 0)
    np.testing.assert_array_equal(np.array(picture.convert("L")), expected)
