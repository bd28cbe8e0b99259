"""Crash safety: atomic checkpoints, a checkpoint on SIGTERM, exact resume after SIGKILL, refusing unsafe pickles."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from gan_lightning.checkpoint import load_checkpoint, read_generator
from gan_lightning.config import compose_config
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


def _partial_size_limit(tmp_path: Path) -> int:
    """A file in the save loop's folder smaller than this is certainly half written: a whole checkpoint of SAVE_LOOP
    less 64 KiB (its exact size depends on the file's name, which torch.save writes into the archive)."""
    probe = tmp_path / "probe" / "last.ckpt"
    probe.parent.mkdir()
    torch.save({"networks": {}, "state_dict": {"w": torch.full((6_000_000,), 1.0)}, "n": 1}, probe)
    size = probe.stat().st_size
    probe.unlink()
    probe.parent.rmdir()
    return size - 64 * 1024


def _sizes(folder: Path) -> list[int]:
    sizes = []
    for entry in os.scandir(folder):
        try:
            sizes.append(entry.stat().st_size)
        except FileNotFoundError:  # a temporary file renamed away between listing and stat
            pass
    return sizes


def _kill_while_saving(tmp_path: Path, writer: str, kills: int, until_torn: bool = False) -> list[str]:
    """SIGKILL the save loop while some file in tmp_path is half written; after each kill, what is wrong with
    the checkpoint (None: whole). Waiting to see a half-written file, rather than sleeping a random time, makes
    the kill land inside a save however fast the disk is, unless this process is descheduled between seeing it
    and killing (a loaded machine): `until_torn` stops at the first torn checkpoint instead of always `kills`."""
    path = tmp_path / "last.ckpt"
    partial = _partial_size_limit(tmp_path)
    problems = []
    for _ in range(kills):
        process = subprocess.Popen([sys.executable, "-c", SAVE_LOOP, str(path), writer], env=ENV)
        try:
            deadline = time.monotonic() + 60
            while not path.exists() and time.monotonic() < deadline:  # one whole save first
                time.sleep(0.01)
            time.sleep(0.05)
            while time.monotonic() < deadline:
                if any(0 < size < partial for size in _sizes(tmp_path)):
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
        if until_torn and problems[-1] is not None:
            break
    return problems


@pytest.mark.slow
def test_checkpoint_killed_mid_save_is_the_old_or_the_new_one_never_torn(tmp_path):
    problems = _kill_while_saving(tmp_path, "atomic", kills=5)
    assert problems == [None] * 5
    # a kill leaves at most a stray temporary file beside it, never under the checkpoint's name
    assert {p.name for p in tmp_path.iterdir() if not p.name.startswith(".last.ckpt.")} == {"last.ckpt"}


@pytest.mark.slow
def test_plain_torch_save_killed_mid_save_leaves_a_torn_file(tmp_path):
    """The control: the same kills do tear a checkpoint written in place, so the test above can fail."""
    problems = _kill_while_saving(tmp_path, "plain", kills=20, until_torn=True)
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
    "~callbacks.quality",
    "~callbacks.best_checkpoint",
    "data.batch_size=16",
    "trainer.accelerator=cpu",
    "trainer.limit_val_batches=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "seed=3",
    # bit-for-bit results need one thread count in every run (`auto` would follow the machine's load)
    "callbacks.cpu_threads.threads=2",
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


@pytest.mark.slow
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
                 f"callbacks.last_checkpoint.every_n_batches={every}", "runs_dir=my_runs"]  # runs go, and last looks, there
    process = _start_cli(*overrides, cwd=tmp_path)
    last = _wait_for("my_runs/*/checkpoints/last.ckpt", tmp_path, process)
    process.kill()
    process.wait()
    killed_at = load_checkpoint(last)["global_step"]
    assert killed_at % (2 * batches) != 0, "the run was not killed mid-epoch"

    resumed = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), *overrides, "ckpt_path=last"],
                             cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    resumed_last = max(tmp_path.glob("my_runs/*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime_ns)
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


class PoisonWeightsAt(L.Callback):
    """Fault injection: at the start of batch `batch` the generator's weights turn NaN, as an overflow would
    leave them (an absurd learning rate diverges at the very first batch, before any checkpoint is saved)."""

    def __init__(self, batch: int):
        self.batch = batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx == self.batch:
            with torch.no_grad():
                for weights in pl_module.generator.parameters():
                    weights.fill_(float("nan"))


@pytest.mark.slow
def test_divergence_after_a_checkpoint_names_it_in_one_line_exit_2(tmp_path):
    """The CLI: a NaN loss at batch 2, after last.ckpt was saved at batches 0 and 1, ends the run with one `error:`
    line naming the step and that checkpoint, which still holds the good weights."""
    overrides = [*TINY, "trainer.max_epochs=1", "trainer.limit_train_batches=5", "~callbacks.sample_grid",
                 "callbacks.last_checkpoint.every_n_batches=1",
                 f"+callbacks.poison._target_={__name__}.PoisonWeightsAt", "+callbacks.poison.batch=2"]
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), *overrides], cwd=tmp_path,
                            env={**ENV, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), ENV.get("PYTHONPATH")]))}, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    (last,) = tmp_path.glob("outputs/train/*/checkpoints/last.ckpt")
    assert errors == [result.stderr.strip().splitlines()[-1]]
    assert errors[0].startswith("error: training diverged: d_loss = nan at epoch 0, batch 2 (global step 4); ")
    assert f"last good checkpoint: {last}" in errors[0]
    checkpoint = load_checkpoint(last)
    assert checkpoint["global_step"] == 4  # saved after batch 1, not overwritten with the NaN weights
    assert all(torch.isfinite(w).all() for w in checkpoint["state_dict"].values() if w.is_floating_point())


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
    with pytest.raises(UserError, match="refusing to load .*: it holds code or objects, not only weights") as refused:
        load_checkpoint(path)
    assert "weights_only" not in str(refused.value)  # torch's advice to load it unsafely is not relayed
    with pytest.raises(UserError, match="refusing to load"):
        read_generator(path)
    assert not marker.exists()


@pytest.mark.slow
@pytest.mark.parametrize("script, args", [
    ("generate.py", ["n=4", "seed=0", "out={out}"]),
    ("evaluate.py", ["n=100", "out={out}"]),
    ("export_generator.py", ["out={out}"]),
    ("demo.py", ["port={port}"]),
    ("train.py", TINY),
])
def test_every_entry_point_refuses_a_poisoned_checkpoint(poisoned_checkpoint, tmp_path, script, args):
    if script == "demo.py":
        pytest.importorskip("gradio", reason='Gradio is missing; pip install -e ".[demo]"')
    path, marker = poisoned_checkpoint
    out = tmp_path / "out"
    with socket.socket() as s:  # a free port, for the demo
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [arg.replace("{out}", str(out)).replace("{port}", str(port)) for arg in args]
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / script), f"ckpt_path={path}", *args],
                            cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: refusing to load") and "Traceback" not in result.stderr
    assert not marker.exists()
    assert not out.exists() and not (tmp_path / "outputs").exists()  # nothing written, not even a run directory


# resolves to subprocess.Popen through the modules that gan_lightning.networks.common imports
POPEN = "gan_lightning.networks.common.torch.ctypes.util.subprocess.Popen"


@pytest.mark.slow
def test_a_checkpoint_naming_a_class_outside_the_networks_is_refused(trained_run, tmp_path):
    """A genuine checkpoint whose generator spec names subprocess.Popen by a path under gan_lightning.networks."""
    checkpoint = torch.load(trained_run("vanilla") / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["networks"]["generator"]["name"] = POPEN
    path = tmp_path / "popen.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(UserError, match=r"refusing to build network .*Popen.*not one of this project's networks"):
        read_generator(path)
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), f"ckpt_path={path}", "n=4",
                             f"out={out}"], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith("error: refusing to build network") and result.stderr.strip().count("\n") == 0
    assert not out.exists()


@pytest.mark.slow
def test_same_seed_same_samples_and_metrics(tmp_path):
    """Two runs with the same seed and config on CPU: identical checkpoints, metrics and generated samples."""
    import numpy as np

    from gan_lightning.generate import main

    results = []
    for run in ("a", "b"):
        metrics = train(compose_config([
            "model=vanilla", "data.batch_size=16", "trainer.accelerator=cpu", "trainer.max_epochs=1",
            "trainer.limit_train_batches=4", "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false",
            "trainer.num_sanity_val_steps=0", "callbacks.quality.eval_samples=100", "callbacks.quality.kid_subset_size=50", "seed=11",
            "callbacks.cpu_threads.threads=2", f"paths.output_dir={tmp_path / run}",
        ]))
        main([f"ckpt_path={tmp_path / run / 'checkpoints' / 'last.ckpt'}", f"out={tmp_path / run / 'gen'}", "n=16"])
        results.append((metrics, np.load(tmp_path / run / "gen" / "samples.npz")["images"]))
    (metrics_a, images_a), (metrics_b, images_b) = results
    assert "val/fid" in metrics_a and metrics_a == metrics_b
    np.testing.assert_array_equal(images_a, images_b)
