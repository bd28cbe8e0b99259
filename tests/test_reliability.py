"""Crash safety: atomic checkpoints, a checkpoint on SIGTERM, exact resume after SIGKILL, refusing unsafe pickles."""

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gan_lightning.checkpoint import load_checkpoint, load_generator
from gan_lightning.config import check_overrides, compose_config
from gan_lightning.errors import UserError
from gan_lightning.train import resolve_ckpt_path, train

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}

# Saves ~24 MB checkpoints to argv[1] in a loop with the given writer; the n-th one is filled with n.
SAVE_LOOP = """
import sys, torch
from gan_lightning.checkpoint import AtomicCheckpointIO
path, writer = sys.argv[1], sys.argv[2]
save = AtomicCheckpointIO().save_checkpoint if writer == "atomic" else torch.save
for n in range(1, 10**6):
    save({"networks": {}, "state_dict": {"w": torch.full((6_000_000,), float(n))}, "n": n}, path)
"""


def _full_size() -> int:
    """Bytes of one whole checkpoint written by SAVE_LOOP."""
    buffer = io.BytesIO()
    torch.save({"networks": {}, "state_dict": {"w": torch.full((6_000_000,), 1.0)}, "n": 1}, buffer)
    return buffer.tell()


def _sizes(folder: Path) -> list[int]:
    sizes = []
    for entry in os.scandir(folder):
        try:
            sizes.append(entry.stat().st_size)
        except FileNotFoundError:  # a temporary file renamed away between listing and stat
            pass
    return sizes


def _kill_while_saving(tmp_path: Path, writer: str, kills: int) -> list[str]:
    """SIGKILL the save loop while some file in tmp_path is half written; after each kill, what is wrong with
    the checkpoint (None: whole). Waiting to see a half-written file, rather than sleeping a random time, makes
    every kill land inside a save however fast the disk is."""
    path = tmp_path / "last.ckpt"
    full = _full_size()
    problems = []
    for _ in range(kills):
        process = subprocess.Popen([sys.executable, "-c", SAVE_LOOP, str(path), writer], env=ENV)
        try:
            deadline = time.monotonic() + 60
            while not path.exists() and time.monotonic() < deadline:  # one whole save first
                time.sleep(0.01)
            time.sleep(0.05)
            while time.monotonic() < deadline:
                if any(0 < size < full for size in _sizes(tmp_path)):
                    break
            else:
                pytest.fail("never saw a half-written checkpoint within 60 s")
        finally:
            process.kill()
            process.wait()
        try:
            checkpoint = load_checkpoint(path)
            w = checkpoint["state_dict"]["w"]
            whole = w.shape == (6_000_000,) and bool((w == checkpoint["n"]).all())
            problems.append(None if whole else "wrong content")
        except UserError as e:
            problems.append(str(e))
    return problems


def test_checkpoint_killed_mid_save_is_the_old_or_the_new_one_never_torn(tmp_path):
    problems = _kill_while_saving(tmp_path, "atomic", kills=5)
    assert problems == [None] * 5
    # a kill leaves at most a stray temporary file beside it, never under the checkpoint's name
    assert {p.name for p in tmp_path.iterdir() if not p.name.startswith(".last.ckpt.")} == {"last.ckpt"}


def test_plain_torch_save_killed_mid_save_leaves_a_torn_file(tmp_path):
    """The control: the same kills do tear a checkpoint written in place, so the test above can fail."""
    problems = _kill_while_saving(tmp_path, "plain", kills=5)
    assert any(problem is not None for problem in problems)


def test_every_run_saves_through_the_atomic_writer():
    from hydra.utils import instantiate

    from gan_lightning.checkpoint import AtomicCheckpointIO

    cfg = compose_config(["trainer.accelerator=cpu", "paths.output_dir=unused"])
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[])
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


# A tiny real run: the vanilla GAN, 16 images a batch, no quality metrics.
TINY = [
    "model=vanilla",
    "model.quality=null",
    "~callbacks.best_checkpoint",
    "data.batch_size=16",
    "trainer.accelerator=cpu",
    "trainer.limit_val_batches=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "seed=3",
]


def _start_cli(*overrides: str, cwd: Path) -> subprocess.Popen:
    """The CLI in the background; its stderr goes to cwd/stderr.txt."""
    with open(cwd / "stderr.txt", "w") as stderr:
        return subprocess.Popen([sys.executable, str(ROOT / "scripts" / "train.py"), *overrides], cwd=cwd, env=ENV,
                                stdout=subprocess.DEVNULL, stderr=stderr, text=True)


def _wait_for(path_glob, cwd: Path, process: subprocess.Popen, timeout: float = 120) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(cwd.glob(path_glob))
        if found:
            return found[0]
        if process.poll() is not None:
            pytest.fail(f"the run ended before {path_glob} appeared: {(cwd / 'stderr.txt').read_text()[-2000:]}")
        time.sleep(0.01)
    process.kill()
    pytest.fail(f"no {path_glob} within {timeout} s")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_mid_epoch_saves_a_checkpoint_and_says_how_to_resume(tmp_path, signum):
    batches = 3000  # far more than the run gets through before the signal
    overrides = [*TINY, "trainer.max_epochs=1", f"trainer.limit_train_batches={batches}", "~callbacks.sample_grid"]
    process = _start_cli(*overrides, cwd=tmp_path)
    _wait_for("outputs/train/*/tensorboard/events.out.tfevents.*", tmp_path, process)  # written just before fit
    time.sleep(3.0)  # well into the epoch
    process.send_signal(signum)
    process.wait(timeout=120)
    stderr = (tmp_path / "stderr.txt").read_text()

    assert process.returncode == 128 + signum
    message = stderr.strip().splitlines()[-1]
    (last,) = tmp_path.glob("outputs/train/*/checkpoints/last.ckpt")
    assert message.startswith(f"interrupted by {signal.Signals(signum).name}: checkpoint saved to ")
    assert message.endswith(f"ckpt_path={last}") and " model=vanilla " in message
    checkpoint = load_checkpoint(last)
    assert checkpoint["epoch"] == 0 and 0 < checkpoint["global_step"] < 2 * batches  # mid-epoch
    assert checkpoint["global_step"] % 2 == 0  # stopped between batches, never between a D and a G step


@pytest.mark.slow
def test_resume_after_sigkill_mid_epoch_matches_an_uninterrupted_run(tmp_path):
    """Kill a run right after its first mid-epoch checkpoint, resume it with ckpt_path=last, and end with exactly
    the weights of a run that was never interrupted: the same batches in the same order, the same noise."""
    batches, every = 12, 5  # checkpoints after batches 5 and 10 of each epoch, and at each epoch end
    overrides = [*TINY, "trainer.max_epochs=2", f"trainer.limit_train_batches={batches}",
                 f"callbacks.last_checkpoint.every_n_batches={every}"]
    process = _start_cli(*overrides, cwd=tmp_path)
    last = _wait_for("outputs/train/*/checkpoints/last.ckpt", tmp_path, process)
    process.kill()
    process.wait()
    killed_at = load_checkpoint(last)["global_step"]
    assert killed_at % (2 * batches) != 0, "the run was not killed mid-epoch"

    resumed = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), *overrides, "ckpt_path=last"],
                             cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    resumed_last = max(tmp_path.glob("outputs/train/*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime_ns)
    assert resumed_last != last

    train(compose_config([*overrides, f"paths.output_dir={tmp_path / 'uninterrupted'}"]))
    expected = load_checkpoint(tmp_path / "uninterrupted" / "checkpoints" / "last.ckpt")
    got = load_checkpoint(resumed_last)
    assert got["global_step"] == expected["global_step"] == 2 * 2 * batches
    assert expected["state_dict"].keys() == got["state_dict"].keys()
    for name, weights in expected["state_dict"].items():  # both networks, BatchNorm statistics included
        assert torch.equal(got["state_dict"][name], weights), name
    for mine, theirs in zip(got["optimizer_states"], expected["optimizer_states"]):
        for key, state in theirs["state"].items():
            assert all(torch.equal(mine["state"][key][k], v) for k, v in state.items())


def test_ckpt_path_last_picks_the_newest_run_and_says_when_there_is_none(tmp_path):
    with pytest.raises(UserError, match=r"ckpt_path=last: no .*/\*/checkpoints/last.ckpt to resume from"):
        resolve_ckpt_path("last", tmp_path)
    paths = []
    for run in ("2026-01-02_00-00-00", "2026-01-01_00-00-00"):  # the second is written later
        path = tmp_path / run / "checkpoints" / "last.ckpt"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
        paths.append(path)
        time.sleep(0.01)
    assert resolve_ckpt_path("last", tmp_path) == paths[1]
    assert resolve_ckpt_path(str(paths[0]), tmp_path) == paths[0]


def test_resume_skips_the_batches_already_trained_in_the_epoch():
    from gan_lightning.data.datamodule import EpochShuffledBatches, ResumableLoader, TensorBatches

    data = TensorBatches(torch.zeros(100, 2, 2, dtype=torch.uint8), torch.arange(100))

    def loader():
        return ResumableLoader(data, batch_size=None, sampler=EpochShuffledBatches(100, 10, seed=5))

    first = loader()
    first.sampler.set_epoch(3)
    epoch = [labels.tolist() for _, labels in first]
    assert sorted(label for batch in epoch for label in batch) == list(range(100)) and len(epoch) == 10
    partial = iter(first)
    for _ in range(4):
        next(partial)
    state = first.state_dict()
    assert state == {"seed": 5, "epoch": 3, "batches": 4}

    second = loader()
    second.load_state_dict(state)
    second.sampler.set_epoch(3)  # Lightning does, before the first batch
    assert [labels.tolist() for _, labels in second] == epoch[4:]
    second.sampler.set_epoch(4)  # the next epoch: all of it, in a new order
    assert len([b for b in second]) == 10
    other = loader()
    other.sampler.set_epoch(4)
    assert [labels.tolist() for _, labels in other] != epoch


class Payload:
    """Pickled, it runs `touch MARKER` when unpickled by anything that trusts the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def poisoned_checkpoint(trained_run, tmp_path):
    """A real checkpoint with a code-running object slipped in: everything else about it is genuine."""
    marker = tmp_path / "PAYLOAD_RAN"
    checkpoint = torch.load(trained_run("vanilla") / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["note"] = Payload(marker)
    path = tmp_path / "poisoned.ckpt"
    torch.save(checkpoint, path)
    return path, marker


def test_poisoned_checkpoint_runs_code_when_trusted(poisoned_checkpoint):
    """The control: the payload is real, a plain unpickling runs it."""
    path, marker = poisoned_checkpoint
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_load_checkpoint_refuses_a_poisoned_checkpoint(poisoned_checkpoint):
    path, marker = poisoned_checkpoint
    with pytest.raises(UserError, match="refusing to load .*: it holds more than weights"):
        load_checkpoint(path)
    with pytest.raises(UserError, match="refusing to load"):
        load_generator(path)
    assert not marker.exists()


@pytest.mark.parametrize("script, args", [
    ("generate.py", ["n=4", "seed=0"]),
    ("evaluate.py", ["n=100"]),
    ("export_generator.py", []),
    ("train.py", TINY),
])
def test_every_entry_point_refuses_a_poisoned_checkpoint(poisoned_checkpoint, tmp_path, script, args):
    path, marker = poisoned_checkpoint
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / script), f"ckpt_path={path}", *args,
                             *([] if script == "train.py" else [f"out={out}"])],
                            cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: refusing to load") and "Traceback" not in result.stderr
    assert not marker.exists()
    assert not out.exists() and not (tmp_path / "outputs").exists()  # nothing written, not even a run directory


# ---- property tests: whatever a user types, one `error:` line and exit 2, never a traceback or lost files

VALUES = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["null", "true", "false", "[]", "[1,2]", "{}", "''", "abc", "1e-3", "0x10", "${seed}", "???"]),
    st.text(max_size=12),
)
TRAIN_KEYS = st.sampled_from([
    "model.noise_dim", "model.grid_cols", "optimizer.lr", "data.batch_size", "data.val_size", "trainer.max_epochs",
    "seed", "model", "data.rotation", "callbacks.last_checkpoint.every_n_batches",
])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(TRAIN_KEYS, VALUES), min_size=1, max_size=3))
def test_train_pre_check_accepts_or_names_the_problem(overrides):
    try:
        check_overrides([f"{key}={value}" for key, value in overrides])
    except UserError as e:
        assert str(e).strip() and "\n" not in str(e)


GENERATE_VALUES = st.one_of(
    st.integers(-3, 40).map(str),
    st.sampled_from(["null", "all", "true", "1.5", "-0.5", "nan", "inf", "[1]", "x", "", "sample", "morph",
                     "sweep", "walk", "progress", "9", "10", "cuda"]),
)
GENERATE_KEYS = st.sampled_from([
    "mode", "n", "seed", "digit", "batch_size", "grid_max", "png", "idx", "frames", "fps", "scale", "seed_to",
    "digit_to", "direction", "span", "device", "run_dir",
])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(GENERATE_KEYS, GENERATE_VALUES), max_size=4))
def test_generate_never_crashes_and_never_touches_files_on_error(trained_run, tmp_path_factory, args):
    import contextlib
    import io

    from gan_lightning.sampling.generate import main

    out = tmp_path_factory.mktemp("out")
    before = {"keep.txt": b"not ours", "samples.png": b"an older grid", "morph.gif": b"an older morph"}
    for name, content in before.items():
        (out / name).write_bytes(content)
    ckpt = trained_run("cgan") / "checkpoints" / "last.ckpt"
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            main([f"ckpt_path={ckpt}", f"out={out}", *(f"{key}={value}" for key, value in args)])
            code = 0
        except SystemExit as e:
            code = e.code
    if code:
        assert code == 2 and stderr.getvalue().startswith("error: ") and stderr.getvalue().count("\n") == 1
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # an error leaves `out` as it was
    else:
        assert (out / "keep.txt").read_bytes() == b"not ours"  # only the mode's own outputs are replaced


@pytest.mark.slow
def test_same_seed_same_samples_and_metrics(tmp_path):
    """Two runs with the same seed and config on CPU: identical checkpoints, metrics and generated samples."""
    import numpy as np

    from gan_lightning.sampling.generate import main

    results = []
    for run in ("a", "b"):
        metrics = train(compose_config([
            "model=vanilla", "data.batch_size=16", "trainer.accelerator=cpu", "trainer.max_epochs=1",
            "trainer.limit_train_batches=4", "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false",
            "trainer.num_sanity_val_steps=0", "model.eval_samples=100", "model.quality.kid_subset_size=50", "seed=11",
            f"paths.output_dir={tmp_path / run}",
        ]))
        main([f"ckpt_path={tmp_path / run / 'checkpoints' / 'last.ckpt'}", f"out={tmp_path / run / 'gen'}", "n=16"])
        results.append((metrics, np.load(tmp_path / run / "gen" / "samples.npz")["images"]))
    (metrics_a, images_a), (metrics_b, images_b) = results
    assert "val/fid" in metrics_a and metrics_a == metrics_b
    np.testing.assert_array_equal(images_a, images_b)
