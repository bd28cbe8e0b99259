"""Several devices: `trainer=ddp` for real, two processes on the CPU (gloo), and the data module's shares per rank."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gan_lightning.checkpoint import load_checkpoint
from gan_lightning.config import check_overrides
from gan_lightning.data import ImageDataModule
from gan_lightning.data.datamodule import EpochShuffledBatches, ResumableLoader, TensorBatches
from gan_lightning.errors import UserError
from tests.conftest import FAST, validation_real_row

ROOT = Path(__file__).resolve().parents[1]
BATCHES = 3  # per rank, FAST's trainer.limit_train_batches
BATCH_SIZE = 32  # FAST's data.batch_size


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    """The run directory of `scripts/train.py trainer=ddp` with two CPU processes on a few batches. Lightning's
    `ddp` starts rank 1 by running the same command again, so this is the CLI in a subprocess."""
    cwd = tmp_path_factory.mktemp("ddp")
    run_dir = cwd / "run"
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), *FAST, "model=vanilla",
               "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.mark.slow
def test_ddp_run_ends_with_a_checkpoint_of_both_ranks_batches(ddp_run):
    checkpoint = load_checkpoint(ddp_run / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 2 * BATCHES  # a D and a G step per batch, the ranks in lockstep
    (data_state,) = checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert data_state == {"seed": 42, "epoch": 0, "batches": BATCHES, "num_replicas": 2}

    # what each rank trained on, from the same data module and seed: different images
    dm = ImageDataModule(batch_size=BATCH_SIZE, shuffle_seed=data_state["seed"])
    dm.setup()
    seen = []
    for rank in (0, 1):
        dm.rank, dm.num_replicas = rank, 2
        batches = iter(dm.train_dataloader().sampler)
        seen.append(torch.cat([next(batches) for _ in range(BATCHES)]))
    assert len(seen[0]) == len(seen[1]) == BATCHES * BATCH_SIZE
    assert not set(seen[0].tolist()) & set(seen[1].tolist())


@pytest.mark.slow
def test_ddp_ranks_draw_different_noise(ddp_run):
    # the training noise comes from torch's global RNG; the checkpoint carries every rank's state
    states = load_checkpoint(ddp_run / "checkpoints" / "last.ckpt")["rng"]["torch_per_rank"]
    assert states.shape[0] == 2
    assert not torch.equal(states[0], states[1])


@pytest.mark.slow
def test_ddp_validation_quality_is_logged(ddp_run):
    (event_file,) = (ddp_run / "tensorboard").glob("events.out.tfevents.*")
    scalars = set(EventAccumulator(str(event_file)).Reload().Tags()["scalars"])
    assert {"val/fid", "val/kid_mean", "val/precision", "val/recall", "val/classifier_score", "val/min_class_share",
            "val/d_real", "val/d_fake"} <= scalars
    # the real-data reference, its images split over the ranks: the same FID as one process scoring them all
    (real_fid,) = EventAccumulator(str(event_file)).Reload().Scalars("val/real_fid")
    assert real_fid.value == pytest.approx(validation_real_row(200)["fid"], rel=1e-3)
    assert (ddp_run / "checkpoints" / "best_fid.ckpt").is_file()


@pytest.mark.slow
def test_ddp_only_rank_zero_writes_pictures_and_summaries(ddp_run):
    assert sorted(p.name for p in (ddp_run / "samples").iterdir()) == ["epoch_000.png", "progress.gif"]
    assert len(list((ddp_run / "tensorboard").glob("events.out.tfevents.*"))) == 1  # one writer
    assert sorted(p.name for p in (ddp_run / "checkpoints").iterdir()) == ["best_fid.ckpt", "last.ckpt"]
    assert not (ddp_run / "lightning_logs").exists()
    assert not list(ddp_run.parent.glob("outputs"))  # rank 1 wrote into the same run directory, nowhere else


@pytest.mark.parametrize("num_replicas", [2, 3])
def test_ranks_take_disjoint_shares_covering_the_epoch(num_replicas):
    size, batch_size = 1000, 32
    shares = []
    for rank in range(num_replicas):
        sampler = EpochShuffledBatches(size, batch_size, seed=3, num_replicas=num_replicas, rank=rank)
        sampler.set_epoch(2)
        batches = list(sampler)
        assert len(batches) == len(sampler) == size // num_replicas // batch_size  # the same count on every rank
        shares.append(torch.cat(batches).tolist())
    indices = [i for share in shares for i in share]
    assert len(set(indices)) == len(indices)  # disjoint
    # together: the first samples of the epoch's one order (one batch of all samples on one process)
    whole = EpochShuffledBatches(size, size, seed=3)
    whole.set_epoch(2)
    (order,) = list(whole)
    assert set(indices) == set(order[: len(indices)].tolist())
    assert size - len(indices) < num_replicas * batch_size  # less than a batch per rank left over


def test_datamodule_gives_each_rank_its_share_of_training_and_validation():
    dm = ImageDataModule(batch_size=64, val_size=5000, shuffle_seed=0)
    dm.setup()
    train, val = [], []
    for rank in (0, 1):
        dm.rank, dm.num_replicas = rank, 2
        train.append(torch.cat(list(dm.train_dataloader().sampler)).tolist())
        loader = dm.val_dataloader()
        assert len(loader) == 40  # ceil(2500 / 64) on both ranks
        val.append(torch.cat(list(loader.sampler)).tolist())
    assert len(train[0]) == len(train[1]) == 55000 // 2 // 64 * 64
    assert not set(train[0]) & set(train[1])
    assert set(val[0]) | set(val[1]) == set(range(5000)) and len(val[0]) == len(val[1]) == 2500
    # one process: the whole epoch, in the same order as before sharding existed
    dm.rank, dm.num_replicas = 0, 1
    assert len(dm.train_dataloader()) == 55000 // 64


def test_resuming_mid_epoch_continues_each_ranks_share():
    data = TensorBatches(torch.zeros(100, 2, 2, dtype=torch.uint8), torch.arange(100))

    def loader(rank, num_replicas):
        return ResumableLoader(data, batch_size=None, sampler=EpochShuffledBatches(100, 10, 5, num_replicas=num_replicas,
                                                                                   rank=rank))

    epoch = {rank: [labels.tolist() for _, labels in loader(rank, 2)] for rank in (0, 1)}
    first = loader(0, 2)
    partial = iter(first)
    next(partial), next(partial)
    state = first.state_dict()
    assert state == {"seed": 5, "epoch": 0, "batches": 2, "num_replicas": 2}
    for rank in (0, 1):  # every rank restores the same state (rank 0's) and goes on with its own share
        resumed = loader(rank, 2)
        resumed.load_state_dict(state)
        assert [labels.tolist() for _, labels in resumed] == epoch[rank][2:]
    # resumed on one process: it skips what both ranks had trained on (2 batches each)
    single = loader(0, 1)
    single.load_state_dict(state)
    remaining = [label for _, labels in single for label in labels.tolist()]
    done = {label for rank in (0, 1) for batch in epoch[rank][:2] for label in batch}
    assert len(remaining) == 60 and not done & set(remaining)


def test_data_on_the_device_needs_batches_cut_in_the_training_process():
    with pytest.raises(UserError, match="num_workers=0"):
        check_overrides(["data.on_device=true", "data.num_workers=2"])


@pytest.mark.slow
def test_ddp_resume_gives_each_rank_its_own_saved_noise_stream(ddp_run):
    """What rank 1 of a resumed DDP run does with the checkpoint: its own saved RNG state, not rank 0's. (The
    checkpoint's per-rank states are rows of one tensor; restoring a row as it is read the wrong bytes.)"""
    from types import SimpleNamespace

    from tests.test_recipes import _gan

    checkpoint = load_checkpoint(ddp_run / "checkpoints" / "last.ckpt")
    states = checkpoint["rng"]["torch_per_rank"]
    gan = _gan("model=vanilla")
    gan._trainer = SimpleNamespace(world_size=2, global_rank=1, strategy=SimpleNamespace(root_device=torch.device("cpu")))
    try:
        gan.on_load_checkpoint(checkpoint)
    finally:
        gan._trainer = None
    assert torch.equal(torch.get_rng_state(), states[1])
