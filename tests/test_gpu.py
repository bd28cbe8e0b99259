"""The GPU path: what only a CUDA device can show (skipped without one; `scripts/gpu_check.sh` runs them on a GPU),
and the CPU halves of the same guarantees."""

from types import SimpleNamespace

import lightning as L
import pytest
import torch

from gan_lightning.models.divergence import DivergenceWatch
from gan_lightning.train import train
from tests.conftest import compose_run
from tests.test_recipes import _gan

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_divergence_watch_reports_the_first_non_finite_loss_only_when_checked():
    watch = DivergenceWatch()
    for batch, value in enumerate([1.0, 2.0, float("inf"), float("nan"), 3.0]):
        watch.watch(torch.tensor(value), "d_loss", epoch=4, batch=batch, global_step=2 * batch)
    divergence = watch.check()
    assert str(divergence) == "training diverged: d_loss = inf at epoch 4, batch 2 (global step 4)"
    assert watch.check() is None  # a check forgets what it has seen
    watch.watch(torch.tensor(0.5), "g_loss", epoch=5, batch=0, global_step=10)
    assert watch.check() is None


def test_divergence_watch_decides_with_the_other_processes():
    watch = DivergenceWatch()
    watch.watch(torch.tensor(1.0), "d_loss", epoch=0, batch=0, global_step=0)
    divergence = watch.check(all_ranks_finite=lambda finite: False)  # another rank saw a NaN
    assert "another process" in str(divergence)


class SyncsForbidden(L.Callback):
    """From batch `start` on, any operation that makes the host wait for the GPU raises, until the last batch."""

    def __init__(self, start: int):
        self.start = start

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.start:
            torch.cuda.set_sync_debug_mode("error")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == trainer.num_training_batches - 2:
            torch.cuda.set_sync_debug_mode("default")


@needs_cuda
@pytest.mark.parametrize("model", ["vanilla", "dcgan", "cgan", "infogan"])
def test_training_steps_never_wait_for_the_gpu(tmp_path, model):
    """Between log steps a training batch (data, D and G steps, EMA, the NaN watch) queues work and returns."""
    cfg = compose_run(tmp_path, f"model={model}", "trainer=gpu", "trainer.limit_train_batches=8",
                      "trainer.log_every_n_steps=100", "trainer.limit_val_batches=0", "~callbacks.best_checkpoint",
                      "~callbacks.progress_bar", f"+callbacks.syncs._target_={__name__}.SyncsForbidden",
                      "+callbacks.syncs.start=2")
    try:
        train(cfg)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@needs_cuda
def test_a_diverged_step_on_the_gpu_stops_the_run_at_the_next_check(tmp_path):
    from gan_lightning.errors import TrainingDiverged

    cfg = compose_run(tmp_path, "model=vanilla", "trainer=gpu", "optimizer.lr=1e12", "trainer.limit_train_batches=20",
                      "trainer.log_every_n_steps=5")
    with pytest.raises(TrainingDiverged, match=r"training diverged: [dg]_loss = (nan|inf) at epoch 0, batch \d+"):
        train(cfg)
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()


@needs_cuda
def test_resume_restores_each_rank_cuda_rng_before_the_module_is_on_the_gpu():
    """Lightning calls on_load_checkpoint with the module still on the CPU: the CUDA RNG state of the rank's device
    (the strategy's root device) is restored all the same."""
    gan = _gan("model=vanilla")  # on the CPU
    device = torch.device("cuda", torch.cuda.current_device())
    saved = torch.cuda.get_rng_state(device)
    torch.randn(100, device=device)  # moves the state on
    other = torch.cuda.get_rng_state(device)
    trainer = SimpleNamespace(world_size=2, global_rank=1, strategy=SimpleNamespace(root_device=device))
    gan._trainer = trainer
    try:
        gan.on_load_checkpoint({"rng": {"torch_per_rank": torch.stack([torch.get_rng_state()] * 2),
                                        "cuda_per_rank": torch.stack([other, saved])}})  # rank 1: saved
    finally:
        gan._trainer = None
    assert torch.equal(torch.cuda.get_rng_state(device), saved)
