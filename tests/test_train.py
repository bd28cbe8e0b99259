"""The real entry point on a few real batches of MNIST."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from gan_lightning.checkpoint import load_checkpoint, read_generator
from gan_lightning.config import compose_config
from gan_lightning.errors import UserError
from gan_lightning.models import GAN
from gan_lightning.train import build, check_batch_size, resume_command, train
from tests.conftest import FAST, compose_run

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["vanilla", "dcgan", "cgan", "infogan"]


@pytest.mark.parametrize("every, epochs, validated", [(2, 3, [1, 2]), (2, 4, [1, 3]), (3, 1, [0])])
def test_a_run_validated_every_nth_epoch_still_validates_its_last(tmp_path, every, epochs, validated):
    """The Vanilla GAN's budget validates every 2nd epoch; a run of an odd number of epochs (or a one-epoch smoke run)
    still ends with its final weights scored."""
    train(compose_run(tmp_path, "model=vanilla", f"trainer.check_val_every_n_epoch={every}",
                      f"trainer.max_epochs={epochs}"))
    (event_file,) = (tmp_path / "tensorboard").glob("events.out.tfevents.*")
    events = EventAccumulator(str(event_file)).Reload()
    batches = 3  # an epoch: FAST's trainer.limit_train_batches; a validation logs at its epoch's last batch
    assert [(e.step + 1) // batches - 1 for e in events.Scalars("val/fid")] == validated


def test_a_run_shorter_than_the_log_interval_still_logs_its_epoch_losses(tmp_path):
    train(compose_run(tmp_path, "model=vanilla", "trainer.log_every_n_steps=50", "trainer.max_epochs=2"))
    (event_file,) = (tmp_path / "tensorboard").glob("events.out.tfevents.*")
    events = EventAccumulator(str(event_file)).Reload()
    assert "train/d_loss" not in events.Tags()["scalars"]  # 3 batches: no step was a log step
    for name in ("train/d_loss_epoch", "train/g_loss_epoch"):
        values = [e.value for e in events.Scalars(name)]
        assert len(values) == 2 and all(torch.isfinite(torch.tensor(values)))


@pytest.mark.parametrize("d_steps", [1, 2])
def test_the_module_logs_exactly_on_the_batches_lightning_writes(tmp_path, monkeypatch, d_steps):
    """`GAN._logs_this_step` (from the optimizer steps taken) agrees with Lightning's own decision at every batch,
    over two epochs, with one or two D steps per G step."""
    decisions = []
    training_step = GAN.training_step

    def recorded_step(self, batch, batch_idx):
        training_step(self, batch, batch_idx)
        decisions.append((self._logs_this_step(), self.trainer._logger_connector.should_update_logs))

    monkeypatch.setattr(GAN, "training_step", recorded_step)
    train(compose_run(tmp_path, "model=vanilla", "trainer.log_every_n_steps=2", "trainer.max_epochs=2",
                      f"model.d_steps={d_steps}", "~callbacks.quality", "~callbacks.best_checkpoint"))
    assert len(decisions) == 6 and all(mine == lightnings for mine, lightnings in decisions), decisions
    assert [mine for mine, _ in decisions][:5] == [False, True, False, True, False]


@pytest.mark.parametrize("model", MODELS)
def test_run_writes_everything_into_its_output_dir(trained_run, model):
    run = trained_run(model)
    assert {p.name for p in run.iterdir()} >= {"checkpoints", "samples", "tensorboard"}
    assert (run / "checkpoints" / "last.ckpt").is_file()
    # one grid per epoch: 8x8 samples, or one row per digit for the conditional GAN
    grid = Image.open(run / "samples" / "epoch_000.png")
    rows = 10 if model in ("cgan", "infogan") else 8  # a row per digit (per categorical code)
    assert grid.size == (8 * 30 + 2, rows * 30 + 2)


@pytest.mark.parametrize("model", MODELS)
def test_tensorboard_gets_losses_probabilities_samples_and_hparams(trained_run, model):
    (event_file,) = (trained_run(model) / "tensorboard").glob("events.out.tfevents.*")
    events = EventAccumulator(str(event_file)).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/d_loss", "train/g_loss", "train/d_real", "train/d_fake", "val/d_real", "val/d_fake"} <= scalars
    assert len(events.Scalars("train/d_loss")) == 3  # one per batch with log_every_n_steps=1
    assert "samples" in events.Tags()["images"]
    hparams = (trained_run(model) / "tensorboard" / "hparams.yaml").read_text()
    assert "noise_dim" in hparams and "lr" in hparams
    # the HPARAMS tab: the run's hyper-parameters with the validation quality metrics as its metrics
    plugin = events.PluginTagToContent("hparams")
    session = HParamsPluginData.FromString(plugin["_hparams_/session_start_info"]).session_start_info
    experiment = HParamsPluginData.FromString(plugin["_hparams_/experiment"]).experiment
    assert session.hparams["model/noise_dim"].number_value == (62 if model == "infogan" else 100)
    assert session.hparams["model/loss"].string_value == ("hinge" if model == "cgan" else "bce")
    assert {m.name.tag for m in experiment.metric_infos} >= {"val/fid", "val/min_class_share"}


@pytest.mark.parametrize("model", MODELS)
def test_checkpoint_is_safe_and_complete(trained_run, model):
    path = trained_run(model) / "checkpoints" / "last.ckpt"
    checkpoint = load_checkpoint(path)  # weights_only: no arbitrary objects inside
    assert len(checkpoint["optimizer_states"]) == 2  # generator and discriminator
    assert checkpoint["global_step"] == 6  # 3 batches x (D step + G step)
    assert checkpoint["variant"] == model  # by registered name, as are the networks
    assert checkpoint["networks"]["generator"]["name"] == ("mlp_generator" if model == "vanilla" else "conv_generator")
    assert ("codes" in checkpoint) == (model == "infogan")
    generator, info = read_generator(path)
    assert info["variant"] == model
    labels = torch.arange(4) if model == "cgan" else None
    images = generator(torch.randn(4, info["noise_dim"]), labels)
    assert images.shape == (4, 1, 28, 28)


def test_training_changes_both_networks_and_samples_use_running_stats(tmp_path):
    from hydra.utils import instantiate

    from gan_lightning.data import ImageDataModule

    cfg = compose_run(tmp_path, "model=cgan")
    dm = ImageDataModule(batch_size=32)
    gan = instantiate(cfg.model, image_shape=dm.image_shape, num_classes=dm.num_classes)
    before_g = [p.detach().clone() for p in gan.generator.parameters()]
    before_d = [p.detach().clone() for p in gan.discriminator.parameters()]
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[], enable_checkpointing=False)
    trainer.fit(gan, datamodule=dm)
    assert all(not torch.equal(a, b) for a, b in zip(before_g, gan.generator.parameters()))
    # every weight of D; (a bias can stay put: under the hinge loss its gradient is zero while every score is
    # inside the margin, -mean(1) + mean(1))
    names = [name for name, _ in gan.discriminator.named_parameters()]
    changed = {n: not torch.equal(a, b) for n, a, b in zip(names, before_d, gan.discriminator.parameters())}
    assert all(c for n, c in changed.items() if not n.endswith("bias")) and sum(changed.values()) >= len(names) - 1
    # samples come from the moving average of G, in eval mode, which sampling restores afterwards
    assert gan.sampling_generator is gan.generator_ema
    gan.generator_ema.train()
    first, _ = gan.fixed_samples()
    second, _ = gan.fixed_samples()
    assert torch.equal(first, second)  # eval-mode BatchNorm: no dependence on the batch, no stat updates
    assert gan.generator_ema.training  # the mode is restored


def test_resume_continues_from_the_checkpoint(trained_run, tmp_path):
    last = trained_run("dcgan") / "checkpoints" / "last.ckpt"
    train(compose_run(tmp_path, f"ckpt_path={last}", "trainer.max_epochs=2"))
    resumed = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    # two epochs done, 2 x 3 batches x (D step + G step): continued, not restarted
    assert resumed["global_step"] == 12
    # the new run's grid of epoch 1, beside the first run's grid of epoch 0: the GIF shows both epochs
    samples = tmp_path / "samples"
    assert sorted(p.name for p in samples.iterdir()) == ["epoch_000.png", "epoch_001.png", "progress.gif"]
    assert (samples / "epoch_000.png").read_bytes() == (trained_run("dcgan") / "samples" / "epoch_000.png").read_bytes()
    assert Image.open(samples / "progress.gif").n_frames == 2


@pytest.mark.slow
def test_same_seed_same_weights(tmp_path):
    weights = []
    for run in ("a", "b"):
        train(compose_run(tmp_path / run, "model=vanilla", "seed=7", "~logger", "~callbacks.sample_grid"))
        generator, _ = read_generator(tmp_path / run / "checkpoints" / "last.ckpt")
        weights.append(generator.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def _cli(*args, cwd):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
@pytest.mark.parametrize("override, key", [
    ("model.noise_dim=-4", "model.noise_dim"),
    ("optimizer.lr=0", "optimizer.lr"),
    ("data.batch_size=0", "data.batch_size"),
    ("model=gan9000", "model=gan9000"),
    ("model.augment=[flip]", "model.augment: unknown augmentation 'flip'; choose from translation, cutout"),
    # several values without -m: Hydra would refuse them only after making the run folder
    ("model.augment=translation,cutout", "model.augment=translation,cutout: several values make a sweep, which needs"),
    # the trainer's own arguments, which Lightning checks: before the run folder exists too
    ("trainer.precision=17", "Precision 17 is invalid"),
    ("trainer.gradient_clip_val=1", "trainer.gradient_clip_val"),
    pytest.param("trainer=gpu", "no CUDA GPU", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has a GPU")),
])
def test_cli_rejects_bad_values_with_one_line(override, key, tmp_path):
    result = _cli(override, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and key in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # stopped before Hydra made a run directory


def test_cli_refuses_a_batch_size_the_networks_cannot_train_on(tmp_path):
    # the Vanilla GAN's BatchNorm1d needs more than one value per channel in training mode
    result = _cli("model=vanilla", "data.batch_size=1", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith("error: data.batch_size=1: the networks cannot train on batches of this size")
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # stopped before Hydra made a run directory


@pytest.mark.parametrize("model", MODELS)
def test_batch_size_check_passes_what_torch_takes(model):
    gan = build(compose_config([f"model={model}"]), "model", image_shape=(1, 28, 28), num_classes=10)
    weights, noise = {k: v.clone() for k, v in gan.state_dict().items()}, torch.get_rng_state()
    check_batch_size(gan, 10**6)  # shapes only: no memory for a million images
    # the cGAN's BatchNorm2d sees a whole feature map per channel, so one image is enough; the BatchNorm1d of the
    # Vanilla GAN and of the DCGAN's and InfoGAN's fully connected layers needs two, and the check says so (InfoGAN's
    # G reads the noise and the codes as one input, as the variant feeds them)
    one_is_enough = model == "cgan"
    check_batch_size(gan, 1 if one_is_enough else 2)
    if not one_is_enough:
        with pytest.raises(UserError, match="data.batch_size=1: the networks cannot train on batches of this size"):
            check_batch_size(gan, 1)
    # nothing of the model, nor the training noise, moved
    assert all(torch.equal(v, weights[k]) for k, v in gan.state_dict().items())
    assert torch.equal(torch.get_rng_state(), noise) and gan.device.type == "cpu"


# a short run through the CLI: the vanilla GAN, one batch, no validation, nothing but its checkpoint
ONE_BATCH = ["model=vanilla", "~callbacks.quality", "~callbacks.best_checkpoint", "~logger", "~callbacks.sample_grid",
             "data.batch_size=16", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
             "trainer.limit_val_batches=0", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


@pytest.mark.slow
def test_a_run_never_shares_its_folder_with_another_started_in_the_same_second(tmp_path):
    """The default run folder is named by the second the run starts. The folders of the next minute are made
    first, each holding another run's file: the run must take a folder of its own, leaving theirs alone."""
    from datetime import datetime, timedelta

    runs = tmp_path / "runs"
    start = datetime.now()
    taken = [runs / (start + timedelta(seconds=s)).strftime("%Y-%m-%d_%H-%M-%S") for s in range(60)]
    for folder in taken:
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text("{}")
    result = _cli(*ONE_BATCH, f"runs_dir={runs}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert all(sorted(p.name for p in folder.iterdir()) == ["metrics.json"] for folder in taken)
    (run,) = set(runs.iterdir()) - set(taken)
    assert run.name.rsplit("-", 1)[0] in {folder.name for folder in taken} and run.name.endswith("-2")
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / ".hydra" / "config.yaml").is_file()


@pytest.mark.slow
def test_cli_refuses_a_run_dir_that_holds_an_earlier_run(trained_run, tmp_path):
    import shutil

    earlier = tmp_path / "earlier run"
    shutil.copytree(trained_run("vanilla"), earlier)
    before = {p: p.stat().st_mtime_ns for p in earlier.rglob("*")}
    result = _cli(*ONE_BATCH, f"hydra.run.dir={earlier}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: hydra.run.dir={earlier} already holds a run (.hydra)")
    assert result.stderr.strip().endswith(f"ckpt_path={earlier / 'checkpoints' / 'last.ckpt'}")
    assert {p: p.stat().st_mtime_ns for p in earlier.rglob("*")} == before  # not a byte written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier run"]


@pytest.mark.parametrize("folder", ["my runs", "runs (2)", "a,b", "a=b", "ünï", "it's", 'say "hi"', "x#1", "~x", "5",
                                    "a ${b}", "back\\slash", "[1]"])
def test_the_resume_command_gives_hydra_the_checkpoint_path_exactly(folder):
    """The printed command, split as a shell splits it, gives Hydra's override parser the checkpoint's path."""
    checkpoint = Path("/tmp") / folder / "checkpoints" / "last.ckpt"
    overrides = ["model=vanilla", "data.batch_size=16", "ckpt_path=/old/last.ckpt"]
    program, script, *arguments = shlex.split(resume_command(overrides, checkpoint))
    assert (program, script) == ("python", "scripts/train.py")
    parsed = OverridesParser.create().parse_overrides(arguments)
    assert [o.key_or_group for o in parsed] == ["model", "data.batch_size", "ckpt_path"]
    assert [o.value() for o in parsed[:2]] == ["vanilla", 16]
    # the value as the config holds it, where OmegaConf reads ${...} (kept as written, escaped: \${...})
    assert OmegaConf.create({"ckpt_path": parsed[2].value()}).ckpt_path == str(checkpoint)
    assert compose_config(arguments).ckpt_path == str(checkpoint)  # what the command composes


@pytest.mark.slow
def test_cli_sweep_runs_each_job_in_its_own_directory(tmp_path):
    result = _cli("-m", "model=vanilla", "model.noise_dim=8,16", *FAST, f"hydra.sweep.dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    for job, noise_dim in (("0", 8), ("1", 16)):
        _, info = read_generator(tmp_path / job / "checkpoints" / "last.ckpt")
        assert info["noise_dim"] == noise_dim
        assert (tmp_path / job / ".hydra" / "config.yaml").is_file()


def test_divergence_stops_the_run_and_names_the_step(tmp_path):
    from gan_lightning.errors import TrainingDiverged

    # an absurd learning rate makes the losses explode within a few batches
    cfg = compose_run(tmp_path, "model=vanilla", "optimizer.lr=1e12", "trainer.limit_train_batches=20")
    with pytest.raises(TrainingDiverged, match=r"training diverged: [dg]_loss = (nan|inf) at epoch 0, batch \d+"):
        train(cfg)
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()  # nothing saved from the garbage weights


def test_a_run_that_diverges_still_animates_the_epochs_it_finished(tmp_path, monkeypatch):
    from gan_lightning.errors import TrainingDiverged
    from gan_lightning.models import GAN

    def poison_the_second_epoch(self):
        if self.current_epoch == 1:
            for p in self.generator.parameters():
                p.data.fill_(float("nan"))

    monkeypatch.setattr(GAN, "on_train_epoch_start", poison_the_second_epoch)
    with pytest.raises(TrainingDiverged, match="at epoch 1, batch 0"):
        train(compose_run(tmp_path, "model=vanilla", "trainer.max_epochs=3"))
    samples = tmp_path / "samples"
    assert sorted(p.name for p in samples.iterdir()) == ["epoch_000.png", "progress.gif"]
    assert Image.open(samples / "progress.gif").n_frames == 1


def test_last_checkpoint_is_written_every_epoch(tmp_path):
    # Lightning's own save_last only fires with its periodic checkpoint; last.ckpt must not wait for that
    train(compose_run(tmp_path, "model=vanilla", "trainer.max_epochs=2", "~callbacks.model_checkpoint",
                      "~callbacks.best_checkpoint", "~callbacks.sample_grid", "~logger"))
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["last.ckpt"]
    assert load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == 12


def _best_fid_state(checkpoint: dict) -> dict:
    (state,) = [v for k, v in checkpoint["callbacks"].items() if k.startswith("ModelCheckpoint{'monitor': 'val/fid'")]
    return state


@pytest.mark.slow
@pytest.mark.parametrize("order", ["as configured", "last_checkpoint first"])
def test_last_checkpoint_holds_the_best_checkpoint_of_its_own_epoch(tmp_path, order):
    """last.ckpt is written after the best-FID checkpoint at each epoch end, whatever the callbacks' order in the
    config, so it records this epoch's best: a run resumed from it into its own folder (the quality benchmark
    does so) compares against the right best FID and keeps one best_fid.ckpt. Written before, last.ckpt of the
    first epoch knew no best, and the resumed run saved best_fid-v1.ckpt beside a stale best_fid.ckpt."""
    run = ["model=vanilla", "~callbacks.model_checkpoint", "~callbacks.sample_grid", "~logger"]

    def config(*overrides):
        cfg = compose_run(tmp_path, *run, *overrides)
        if order == "last_checkpoint first":  # the same callbacks, last_checkpoint moved to the front
            callbacks = OmegaConf.to_container(cfg.callbacks)
            cfg.callbacks = {"last_checkpoint": callbacks.pop("last_checkpoint"), **callbacks}
        return cfg

    last = tmp_path / "checkpoints" / "last.ckpt"
    fids = [train(config())["val/fid"]]  # one epoch, then resumed one epoch at a time into the same folder
    for epochs in (2, 3):
        assert _best_fid_state(load_checkpoint(last))["best_model_score"].item() == pytest.approx(min(fids))
        fids.append(train(config(f"trainer.max_epochs={epochs}", f"ckpt_path={last}"))["val/fid"])
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best_fid.ckpt", "last.ckpt"]
    best = load_checkpoint(tmp_path / "checkpoints" / "best_fid.ckpt")
    assert best["epoch"] == fids.index(min(fids))
    assert _best_fid_state(best)["best_model_score"].item() == pytest.approx(min(fids))


@pytest.mark.slow
def test_a_run_prints_no_third_party_noise_and_ends_with_one_summary_line(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "model=vanilla", *FAST,
                           f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    output = done.stdout + done.stderr
    for noise in ("Tip:", "LeafSpec", "is not supported by the model summary"):
        assert noise not in output
    (summary,) = [line for line in output.splitlines() if " - Done after " in line]
    best = tmp_path / "run" / "checkpoints" / "best_fid.ckpt"
    assert f"use {best}" in summary and "val/fid " in summary and f"run folder {tmp_path / 'run'}" in summary
    assert summary.endswith(f"trainer.max_epochs=2 ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}")


@pytest.mark.slow
def test_the_epoch_means_are_the_means_of_the_steps_also_for_a_bf16_loss(tmp_path):
    """The DCGAN's hinge loss is computed in bf16 under autocast on a CPU with native bf16; its epoch mean is summed in
    fp32, so it is the mean of the logged steps (a bf16 sum stops growing after a few hundred steps)."""
    train(compose_run(tmp_path, "model=dcgan", "trainer.limit_train_batches=300", "~callbacks.quality",
                      "~callbacks.best_checkpoint", "~callbacks.sample_grid"))
    (event_file,) = (tmp_path / "tensorboard").glob("events.out.tfevents.*")
    events = EventAccumulator(str(event_file), size_guidance={"scalars": 0}).Reload()
    for name in ("train/d_loss", "train/g_loss", "train/d_real", "train/d_fake"):
        steps = [e.value for e in events.Scalars(name)]
        (mean,) = [e.value for e in events.Scalars(f"{name}_epoch")]
        assert len(steps) == 300 and mean == pytest.approx(sum(steps) / len(steps), rel=1e-3, abs=1e-4), name
