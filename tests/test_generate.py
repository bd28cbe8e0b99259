"""scripts/generate.py and scripts/export_generator.py on real (briefly trained) checkpoints."""

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan_lightning.checkpoint import load_checkpoint, read_generator
from gan_lightning.data.datasets import read_idx
from gan_lightning.errors import UserError
from gan_lightning.export import main as export_main
from gan_lightning.generate import files_size, main
from gan_lightning.sampling import Sampler, latent, outputs, progress_gif

ROOT = Path(__file__).resolve().parents[1]


def ckpt(trained_run, model: str) -> Path:
    return trained_run(model) / "checkpoints" / "last.ckpt"


def generate(ckpt_path: Path, out: Path, *args: str) -> Path:
    main([f"ckpt_path={ckpt_path}", f"out={out}", *args])
    return out


def failure(capsys, *args: str) -> str:
    """Run the generate entry point expecting a user error: exit code 2 and one line on stderr; returns it."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def grid_size(rows: int, cols: int) -> tuple[int, int]:
    return cols * 30 + 2, rows * 30 + 2


# ---- mode=sample --------------------------------------------------------------------------------------------


def test_conditional_all_digits_gives_balanced_labels_and_one_row_per_digit(trained_run, tmp_path):
    out = generate(ckpt(trained_run, "cgan"), tmp_path / "out", "n=50")
    data = np.load(out / "samples.npz")
    assert data["images"].shape == (50, 28, 28) and data["images"].dtype == np.uint8
    assert data["labels"].dtype == np.int64
    assert np.bincount(data["labels"], minlength=10).tolist() == [5] * 10
    assert Image.open(out / "samples.png").size == grid_size(rows=10, cols=5)


def test_one_digit(trained_run, tmp_path):
    out = generate(ckpt(trained_run, "cgan"), tmp_path / "out", "n=9", "digit=7")
    data = np.load(out / "samples.npz")
    assert data["labels"].tolist() == [7] * 9
    assert Image.open(out / "samples.png").size == grid_size(rows=3, cols=3)


def test_samples_are_the_generator_outputs_with_black_background_at_zero(trained_run, tmp_path):
    path = ckpt(trained_run, "vanilla")
    out = generate(path, tmp_path / "out", "n=20", "seed=3")
    data = np.load(out / "samples.npz")
    assert set(data.files) == {"images"}  # unconditional: no labels
    generator, info = read_generator(path)
    with torch.no_grad():
        expected = generator(latent.noise(3, info["noise_dim"], 20))  # (20, 1, 28, 28) in [-1, 1]
    # -1 (the generator's background, as the data are scaled) is 0, black, as in MNIST
    np.testing.assert_array_equal(data["images"], ((expected[:, 0] + 1) * 127.5).round().to(torch.uint8).numpy())


def test_a_generator_that_draws_only_background_gives_black_images(trained_run, tmp_path):
    checkpoint = load_checkpoint(ckpt(trained_run, "dcgan"))
    for prefix in ("generator.", "generator_ema."):  # the trained weights and their moving average alike
        last_bias = [k for k in checkpoint["state_dict"] if k.startswith(prefix) and k.endswith(".bias")][-1]
        checkpoint["state_dict"][last_bias].fill_(-50.0)  # tanh(-50) = -1 everywhere
    torch.save({"networks": checkpoint["networks"], "state_dict": checkpoint["state_dict"]}, tmp_path / "dark.pt")
    out = generate(tmp_path / "dark.pt", tmp_path / "out", "n=4")
    assert (np.load(out / "samples.npz")["images"] == 0).all()


def test_same_seed_same_samples_whatever_the_batch_size(trained_run, tmp_path):
    path = ckpt(trained_run, "vanilla")
    one = np.load(generate(path, tmp_path / "a", "n=300", "batch_size=300") / "samples.npz")["images"]
    batched = np.load(generate(path, tmp_path / "b", "n=300", "batch_size=64") / "samples.npz")["images"]
    other_seed = np.load(generate(path, tmp_path / "c", "n=300", "seed=1") / "samples.npz")["images"]
    np.testing.assert_array_equal(one, batched)
    assert not np.array_equal(one, other_seed)


def test_png_per_sample_and_mnist_idx_files(trained_run, tmp_path):
    out = generate(ckpt(trained_run, "cgan"), tmp_path / "out", "n=12", "png=true", "idx=true")
    data = np.load(out / "samples.npz")
    images = read_idx(out / "samples-images-idx3-ubyte")
    labels = read_idx(out / "samples-labels-idx1-ubyte")
    np.testing.assert_array_equal(images, data["images"])
    np.testing.assert_array_equal(labels, data["labels"])
    pngs = sorted((out / "png").iterdir())
    assert [p.name for p in pngs[:3]] == ["00000_0.png", "00001_1.png", "00002_2.png"] and len(pngs) == 12
    np.testing.assert_array_equal(np.array(Image.open(pngs[11])), data["images"][11])


def test_a_rerun_replaces_the_png_folder_whole(trained_run, tmp_path):
    path = ckpt(trained_run, "vanilla")
    generate(path, tmp_path / "out", "n=5", "png=true")
    generate(path, tmp_path / "out", "n=2", "png=true")
    assert sorted(p.name for p in (tmp_path / "out" / "png").iterdir()) == ["00000.png", "00001.png"]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporary left over


# ---- morph, sweep, walk -------------------------------------------------------------------------------------


def label_sensitive(trained_run, tmp_path) -> Path:
    """The cGAN checkpoint with its generator's label weights scaled up: after a few training batches the
    label barely changes the image; here it must, so a test can tell digits and label mixtures apart (x 1000: the
    default cGAN's BatchNorm layers after the first shrink a x 100 label signal to a few grey levels)."""
    checkpoint = load_checkpoint(ckpt(trained_run, "cgan"))
    for prefix in ("generator.", "generator_ema."):  # the trained weights and their moving average alike
        checkpoint["state_dict"][f"{prefix}net.0.weight"][-10:] *= 1000.0  # (noise_dim + 10, ...): the one-hot rows
    path = tmp_path / "label_sensitive.pt"
    torch.save({"networks": checkpoint["networks"], "state_dict": checkpoint["state_dict"]}, path)
    return path


def test_digit_morph_keeps_the_style_and_ends_on_both_digits(trained_run, tmp_path):
    path = label_sensitive(trained_run, tmp_path)
    out = generate(path, tmp_path / "out", "mode=morph", "digit=3", "digit_to=8", "frames=6", "seed=5")
    gif = Image.open(out / "morph.gif")
    assert gif.n_frames == 6
    frames = np.load(out / "morph.npz")["frames"]
    assert frames.shape == (6, 1, 28, 28)
    assert Image.open(out / "morph.png").size == grid_size(rows=1, cols=6)
    sampler = Sampler.load(path)
    z = latent.noise(5, sampler.noise_dim).expand(2, -1)
    three, eight = sampler.images(z, torch.tensor([3, 8]))
    np.testing.assert_array_equal(frames[0, 0], three)
    np.testing.assert_array_equal(frames[-1, 0], eight)
    # in between, the generator gets the mixed label 0.6 * e3 + 0.4 * e8
    mixed = 0.6 * latent.label_vector(3, 10) + 0.4 * latent.label_vector(8, 10)
    expected = sampler.images(z[:1], mixed[None])[0]
    assert np.abs(frames[2, 0].astype(int) - expected).max() <= 1  # float rounding of 0.6 and 0.4 aside
    assert np.abs(frames[2, 0].astype(int) - three).max() > 10 and np.abs(frames[2, 0].astype(int) - eight).max() > 10


def test_same_seed_same_animation_bytes(trained_run, tmp_path):
    path = ckpt(trained_run, "vanilla")
    first = generate(path, tmp_path / "a", "mode=morph", "seed=2", "seed_to=9", "frames=5")
    again = generate(path, tmp_path / "b", "mode=morph", "seed=2", "seed_to=9", "frames=5")
    other = generate(path, tmp_path / "c", "mode=morph", "seed=3", "seed_to=9", "frames=5")
    assert (first / "morph.gif").read_bytes() == (again / "morph.gif").read_bytes()
    assert Image.open(first / "morph.gif").n_frames == 5
    assert not np.array_equal(np.load(first / "morph.npz")["frames"], np.load(other / "morph.npz")["frames"])
    # the end points are samples 0 of the two seeds
    sampler = Sampler.load(path)
    frames = np.load(first / "morph.npz")["frames"]
    np.testing.assert_array_equal(frames[0, 0], next(sampler.samples(1, seed=2))[0][0])
    np.testing.assert_array_equal(frames[-1, 0], next(sampler.samples(1, seed=9))[0][0])


def test_slerp_follows_the_arc_between_its_end_points():
    a, b = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 2.0])
    path = latent.slerp(a, b, torch.linspace(0, 1, 5))
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b)
    torch.testing.assert_close(path.norm(dim=1), torch.full((5,), 2.0))  # on the circle, not across it
    torch.testing.assert_close(path[2], torch.tensor([2**0.5, 2**0.5]))


def test_conditional_morph_of_all_digits_and_sweep(trained_run, tmp_path):
    path = label_sensitive(trained_run, tmp_path)
    out = generate(path, tmp_path / "out", "mode=morph", "frames=3", "scale=1")
    assert np.load(out / "morph.npz")["frames"].shape == (3, 10, 28, 28)  # every digit side by side
    assert Image.open(out / "morph.gif").size == grid_size(rows=1, cols=10)
    generate(path, out, "mode=sweep", "frames=3", "seed=4")
    assert Image.open(out / "sweep.gif").n_frames == 9 * 2 + 1  # 0 -> 1 -> ... -> 9, 3 frames a step
    assert Image.open(out / "sweep.png").size == grid_size(rows=1, cols=10)
    sweep = np.load(out / "sweep.npz")["frames"]
    sampler = Sampler.load(path)
    z = latent.noise(4, sampler.noise_dim).expand(10, -1)
    np.testing.assert_array_equal(sweep[::2, 0], sampler.images(z, torch.arange(10)))  # one style, ten digits


def test_walk_passes_through_the_seed_sample(trained_run, tmp_path):
    path = ckpt(trained_run, "dcgan")
    out = generate(path, tmp_path / "out", "mode=walk", "direction=7", "frames=5", "span=2")
    frames = np.load(out / "walk.npz")["frames"]
    assert frames.shape == (5, 1, 28, 28) and Image.open(out / "walk.gif").n_frames == 5
    sample = next(Sampler.load(path).samples(1, seed=0))[0][0]
    # the same image; a batch of 5 and a batch of 1 may round a pixel differently on some CPUs (kernel blocking)
    assert np.abs(frames[2, 0].astype(int) - sample.astype(int)).max() <= 1


# ---- training progression ---------------------------------------------------------------------------------


def test_training_writes_its_progression_gif(trained_run):
    samples = trained_run("vanilla") / "samples"
    assert Image.open(samples / "progress.gif").n_frames == len(list(samples.glob("epoch_*.png")))


def test_progress_gif_of_a_run_folder_in_epoch_order(tmp_path):
    samples = tmp_path / "run" / "samples"
    samples.mkdir(parents=True)
    for epoch in (0, 2, 10):  # 10 sorts before 2 as text
        Image.new("RGB", (62, 62), (epoch * 20,) * 3).save(samples / f"epoch_{epoch:03d}.png")
    main(["mode=progress", f"run_dir={tmp_path / 'run'}"])
    gif = Image.open(samples / "progress.gif")
    values = []
    for i in range(gif.n_frames):
        gif.seek(i)
        values.append(gif.convert("L").getpixel((5, 5)))
    assert values == [0, 40, 200]
    with pytest.raises(UserError, match="no epoch_"):
        progress_gif(tmp_path)


# ---- export --------------------------------------------------------------------------------------------------


def test_exported_generator_gives_the_same_samples(trained_run, tmp_path):
    path = ckpt(trained_run, "cgan")
    export_main([f"ckpt_path={path}", f"out={tmp_path / 'generator.pt'}"])
    exported = torch.load(tmp_path / "generator.pt", weights_only=True)
    assert not any(k.startswith("discriminator.") for k in exported["state_dict"])
    assert set(exported["networks"]) == {"generator"}
    a = np.load(generate(path, tmp_path / "a", "n=20", "digit=4") / "samples.npz")
    b = np.load(generate(tmp_path / "generator.pt", tmp_path / "b", "n=20", "digit=4") / "samples.npz")
    np.testing.assert_array_equal(a["images"], b["images"])
    np.testing.assert_array_equal(a["labels"], b["labels"])


def test_export_refuses_a_folder_that_holds_other_files_as_out(trained_run, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit_info:
        export_main([f"ckpt_path={ckpt(trained_run, 'vanilla')}", f"out={tmp_path}"])
    assert exit_info.value.code == 2 and "holds other files" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    (tmp_path / "folder.pt").mkdir()  # a .pt name asks for one file: a folder there is refused
    with pytest.raises(SystemExit) as exit_info:
        export_main([f"ckpt_path={ckpt(trained_run, 'vanilla')}", f"out={tmp_path / 'folder.pt'}"])
    assert exit_info.value.code == 2 and "is a folder" in capsys.readouterr().err


# ---- errors ----------------------------------------------------------------------------------------------------


@pytest.fixture
def previous_out(tmp_path):
    """An out folder holding the samples.npz of an earlier run, which a failed run must leave alone."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "samples.npz").write_bytes(b"earlier samples")
    return out


@pytest.mark.parametrize(
    "model, args, message",
    [
        ("cgan", ["digit=12"], "digit must be 'all' or a digit from 0 to 9, got 12"),
        ("vanilla", ["digit=3"], "unconditional"),
        ("cgan", ["n=0"], "n must be a positive integer"),
        ("cgan", ["n=-4"], "n must be a positive integer"),
        ("cgan", ["seeed=1"], "unknown key 'seeed'; did you mean seed?"),
        ("cgan", ["digit"], "expected key=value"),
        ("vanilla", ["mode=sweep"], "needs a conditional model"),
        ("cgan", ["mode=walk", "direction=100"], "direction must be"),
        ("cgan", ["mode=morph", "digit_to=3"], "digit_to needs a start digit"),
        ("cgan", ["seed=18446744073709551616"], "seed must be an integer from 0 to 4294967295"),
        ("cgan", [f"n={2**62}"], "n is too large: the samples need about"),  # more than any disk holds
        ("cgan", ["mode=walk", "span=inf"], "span must be a positive number"),
    ],
)
def test_bad_requests_fail_before_writing(trained_run, previous_out, capsys, model, args, message):
    err = failure(capsys, f"ckpt_path={ckpt(trained_run, model)}", f"out={previous_out}", *args)
    assert message in err
    assert [p.name for p in previous_out.iterdir()] == ["samples.npz"]
    assert (previous_out / "samples.npz").read_bytes() == b"earlier samples"


def test_missing_and_foreign_files_fail_before_writing(tmp_path, previous_out, capsys):
    random_bytes = tmp_path / "random.bin"
    random_bytes.write_bytes(bytes(range(256)) * 8)
    other_kind = tmp_path / "classifier.pt"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}, "epoch": 3}, other_kind)
    for path, message in [
        (tmp_path / "missing.ckpt", "not found"),
        (random_bytes, "not a checkpoint"),
        (other_kind, "is not a gan-lightning checkpoint"),
    ]:
        assert message in failure(capsys, f"ckpt_path={path}", f"out={previous_out}")
    assert (previous_out / "samples.npz").read_bytes() == b"earlier samples"


def test_out_that_is_a_file_is_refused(trained_run, tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("keep me")
    assert "is a file" in failure(capsys, f"ckpt_path={ckpt(trained_run, 'vanilla')}", f"out={out}")
    assert out.read_text() == "keep me"


def test_a_failure_while_writing_leaves_the_earlier_files(trained_run, previous_out, monkeypatch):
    def broken_write(self, images, labels):
        raise OSError("disk full")

    monkeypatch.setattr(outputs.NpzWriter, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        generate(ckpt(trained_run, "vanilla"), previous_out, "n=8", "png=true", "idx=true")
    assert [p.name for p in previous_out.iterdir()] == ["samples.npz"]
    assert (previous_out / "samples.npz").read_bytes() == b"earlier samples"


def test_npz_labels_stream_to_the_file_in_memory_bounded_by_a_batch(tmp_path):
    """The labels of a conditional request are not kept in memory until the end: a million samples written in
    batches of 10,000 (their 8 MB of labels kept, then joined, would take 16 MB at once) stay under 2 MB of
    allocations, and the npz reads back whole."""
    import tracemalloc

    n, batch = 1_000_000, 10_000
    path = tmp_path / "samples.npz"
    tracemalloc.start()
    try:
        writer = outputs.NpzWriter(path, n, (2, 2), with_labels=True)
        for start in range(0, n, batch):
            index = np.arange(start, start + batch)
            writer.write(np.broadcast_to((index % 256).astype(np.uint8)[:, None, None], (batch, 2, 2)), index % 10)
        writer.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 10**6, f"{peak / 1e6:.1f} MB allocated at once"
    assert list(tmp_path.iterdir()) == [path]  # the labels' temporary file is gone
    data = np.load(path)
    assert data["labels"].dtype == np.int64 and np.array_equal(data["labels"], np.arange(n) % 10)
    assert data["images"].shape == (n, 2, 2) and np.array_equal(data["images"][:, 1, 1], np.arange(n) % 256)


@pytest.mark.parametrize("model", ["vanilla", "cgan"])
def test_the_disk_check_counts_what_the_files_really_take(trained_run, tmp_path, capsys, model):
    path = ckpt(trained_run, model)
    out = generate(path, tmp_path / "out", "n=3000", "idx=true")
    taken = sum(p.stat().st_size for p in out.iterdir() if p.name != "samples.png")
    estimate = files_size(Sampler.load(path), 3000, seed=0, digit=None, png=False, idx=True)
    assert abs(estimate - taken) < 0.05 * taken
    # a billion samples of this generator need hundreds of GB: refused before anything is written
    needed = files_size(Sampler.load(path), 10**9, seed=0, digit=None, png=False, idx=False)
    if needed <= shutil.disk_usage(tmp_path).free:
        pytest.skip(f"this disk holds {needed / 1e9:.0f} GB")
    err = failure(capsys, f"ckpt_path={path}", f"out={tmp_path / 'huge'}", "n=1000000000")
    assert "n is too large: the samples need about" in err and not (tmp_path / "huge").exists()


def _in_a_terminal() -> None:
    """Ctrl-C's default, as in a command typed at a terminal (a test run in the background inherits it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("out_existed", [True, False])
def test_a_stopped_run_leaves_out_as_it_was(trained_run, tmp_path, signum, out_existed):
    """SIGTERM or Ctrl-C while the samples stream to their files: one line, exit 143 / 130, no temporary files,
    and `out` as it was: the earlier files untouched, or no folder at all where there was none."""
    out = tmp_path / "new" / "out"
    if out_existed:
        out.mkdir(parents=True)
        (out / "samples.npz").write_bytes(b"earlier samples")
    args = [f"ckpt_path={ckpt(trained_run, 'vanilla')}", f"out={out}", "n=20000000", "idx=true"]
    process = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "generate.py"), *args], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_in_a_terminal)  # noqa: PLW1509 (no threads in this test process's child)
    deadline = time.monotonic() + 120
    while not any(p.name.endswith(".npz") and p.name.startswith(".") and p.stat().st_size > 10**6
                  for p in (out.iterdir() if out.is_dir() else ())):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum
    assert stderr.strip().splitlines() == [f"stopped by {signal.Signals(signum).name}; nothing was written"]
    if out_existed:
        assert [p.name for p in out.iterdir()] == ["samples.npz"]
        assert (out / "samples.npz").read_bytes() == b"earlier samples"
    else:
        assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_script_reports_one_line_and_exit_code_2(trained_run, previous_out):
    args = [f"ckpt_path={ckpt(trained_run, 'cgan')}", f"out={previous_out}", "digit=12"]
    result = subprocess.run(
        [sys.executable, "scripts/generate.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: digit must be 'all' or a digit from 0 to 9, got 12"]
    assert (previous_out / "samples.npz").read_bytes() == b"earlier samples"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, a folder no file can be made in")
def test_an_out_that_cannot_be_written_is_said_so_not_called_a_full_disk(capsys):
    message = failure(capsys, "model=cgan", "n=10", "out=/proc/generated")
    assert "/proc cannot be written" in message and "GB" not in message


def test_a_walk_beyond_any_noise_is_refused_before_it_draws(capsys):
    assert "span must be at most 100.0, got 1e+300" in failure(capsys, "model=cgan", "mode=walk", "span=1e300")
