"""The training watchman: each alarm on a few real batches of a run that has the problem, none on a healthy one,
the same alarms replayed from the logs, and what an alarm writes (log line, TensorBoard text, health.json,
metrics.json) and does (`action=stop`)."""

import json
import logging
import math

import pytest
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gan_lightning.callbacks.health import Judge, replay, saturated
from gan_lightning.checkpoint import load_checkpoint
from gan_lightning.config import compose_config
from gan_lightning.errors import UserError
from gan_lightning.sweeps import run_job
from gan_lightning.train import train
from tests.conftest import compose_run

# G frozen: its learning rate 0 (the key stays accepted: it is how a test freezes G), so D separates its images
# from real ones at once and the FID stays where it started
# G never learns, so D soon tells its images from real ones
FROZEN_G = ["optimizer.generator.lr=0", "trainer.limit_train_batches=40", "trainer.log_every_n_steps=10"]
# the DCGAN's recipe before today's (hinge loss, spectral-norm D, two extra 3x3 layers, 4e-4: the cGAN's networks
# still), whose D a frozen G saturates within 2 epochs of 40 batches; today's BatchNorm D with BCE was not saturated
# in 5 (a frozen G is caught there by the collapse and stall alarms, from the validation metrics)
DCGAN_BEFORE = ["experiment=dcgan_sngan"]
# a recipe that collapses from the start on real MNIST (docs/health.md): the Vanilla GAN without minibatch standard
# deviation or EMA, G's learning rate 100 times D's
COLLAPSE = ["model=vanilla", "model.discriminator.minibatch_std=0", "model.ema_decay=0", "optimizer.lr=2e-3",
            "optimizer.d_lr=2e-5", "trainer.limit_train_batches=40"]


def _health(run_dir) -> list[dict]:
    return json.loads((run_dir / "health.json").read_text())


def _texts(run_dir) -> dict[str, list[str]]:
    (event_file,) = (run_dir / "tensorboard").glob("events.out.tfevents.*")
    events = EventAccumulator(str(event_file), size_guidance={"tensors": 0}).Reload()
    return {tag.removesuffix("/text_summary"): [e.tensor_proto.string_val[0].decode() for e in events.Tensors(tag)]
            for tag in events.Tags()["tensors"] if tag.startswith("health/")}


# ---- the rules, apart from training ---------------------------------------------------------------------------


@pytest.mark.parametrize("loss, d_loss, d_real, d_fake, expected", [
    ("bce", 0.05, 0.97, 0.02, True),  # D right with 97-98% confidence on both sides
    ("bce", 1.3, 0.55, 0.45, False),  # a balanced game
    ("hinge", 0.0, 4.6, -1.3, True),  # every image beyond the margin: no gradient left for D
    ("hinge", 1.56, 0.62, -0.09, False),
    ("wgan-gp", -30.0, 12.0, -15.0, True),  # Wasserstein estimate 27
    ("wgan-gp", -2.0, 1.0, -1.0, False),
])
def test_saturation_is_defined_per_loss(loss, d_loss, d_real, d_fake, expected):
    assert saturated(loss, d_loss, d_real, d_fake, {"bce": 0.1, "hinge": 0.1, "wgan-gp": 10.0}) is expected


def test_collapse_is_judged_against_the_real_row_and_the_runs_own_best():
    real = {"val/real_min_class_share": 0.09, "val/real_recall": 0.9, "val/real_coverage": 0.8}

    def validation(judge, epoch, share, recall, coverage):
        metrics = {**real, "val/min_class_share": share, "val/recall": recall, "val/coverage": coverage}
        return [a.name for a in judge.validation(metrics, epoch, epoch * 100)]

    judge = Judge("bce", collapse_drop=0.5, collapse_from=0.25, collapse_absent=0.1, collapse_after=2)
    assert validation(judge, 0, 0.9, 0.9, 0.8) == []  # the first two validations are not judged, nor a best
    assert validation(judge, 1, 0.0, 0.001, 0.02) == []
    assert validation(judge, 2, 0.07, 0.6, 0.5) == []
    assert validation(judge, 3, 0.085, 0.8, 0.7) == []
    assert validation(judge, 4, 0.08, 0.35, 0.6) == ["collapse"]  # recall fell under half of its best fraction
    assert validation(judge, 5, 0.08, 0.3, 0.6) == []  # the same episode: said once
    assert validation(judge, 6, 0.08, 0.75, 0.7) == []  # over
    assert validation(judge, 7, 0.004, 0.75, 0.7) == ["collapse"]  # a class all but gone: a new episode

    judge = Judge("bce", collapse_after=0)
    assert validation(judge, 0, 0.08, 0.09, 0.1) == []
    assert validation(judge, 1, 0.08, 0.0, 0.0) == []  # from a best of a few samples, a drop is noise


# ---- on real batches ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_frozen_generator_raises_saturation_and_stall_and_the_replay_agrees(tmp_path, caplog):
    cfg = compose_run(tmp_path, *FROZEN_G, *DCGAN_BEFORE, "trainer.max_epochs=3", "callbacks.health.stall_patience=1")
    with caplog.at_level(logging.WARNING, logger="gan_lightning.callbacks.health"):
        train(cfg)
    alarms = _health(tmp_path)
    names = [a["name"] for a in alarms]
    assert "saturation" in names and "stall" in names, alarms
    saturation = alarms[names.index("saturation")]
    assert saturation["epoch"] <= 1 and saturation["evidence"]["d_loss"] <= 0.1  # the hinge loss of DCGAN_BEFORE
    assert saturation["step"] == 40 * (saturation["epoch"] + 1)  # batches trained
    stall = alarms[names.index("stall")]
    assert stall["evidence"]["val/fid"] > stall["evidence"]["best val/fid"]
    # one log line per alarm, saying what to try; the same line in TensorBoard's text tab
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("health: ")]
    assert len(lines) == len(alarms) and all("\n" not in line for line in lines)
    assert any(line.startswith("health: saturation") and "optimizer.d_lr" in line for line in lines)
    texts = _texts(tmp_path)
    assert texts["health/saturation"] == [saturation["message"]]
    # the finished run's logs, replayed, give the same alarms (its config where Hydra would have written it)
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / ".hydra" / "config.yaml")
    assert [(a.name, a.epoch, a.step) for a in replay(tmp_path)] == [(a["name"], a["epoch"], a["step"]) for a in alarms]


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["bce", "wgan-gp"])
def test_a_frozen_generator_saturates_d_whatever_the_loss(tmp_path, loss):
    """The hinge loss is DCGAN_BEFORE's (above); the Vanilla GAN's D trains with BCE or as a WGAN-GP critic."""
    train(compose_run(tmp_path, *FROZEN_G, "model=vanilla", f"model.loss={loss}", "trainer.max_epochs=2"))
    (saturation,) = [a for a in _health(tmp_path) if a["name"] == "saturation"]
    evidence = saturation["evidence"]
    if loss == "bce":  # probabilities
        assert evidence["d_loss"] <= 0.1 and evidence["D(x)"] > 0.9 and evidence["D(G(z))"] < 0.1
    else:  # the critic's Wasserstein estimate
        assert evidence["D(x)"] - evidence["D(G(z))"] >= 10.0


@pytest.mark.slow
def test_action_stop_ends_the_run_on_its_first_alarm_with_a_status_that_names_it(tmp_path, caplog):
    cfg = compose_run(tmp_path, *FROZEN_G, *DCGAN_BEFORE, "trainer.max_epochs=5", "callbacks.health.action=stop",
                      "callbacks.health.stall_patience=1", "~callbacks.quality", "~callbacks.best_checkpoint")
    with caplog.at_level(logging.INFO):
        run_job(cfg, train)
    result = json.loads((tmp_path / "metrics.json").read_text())
    (alarm,) = result["health"]
    assert alarm["name"] == "saturation" and result["status"] == "stopped: saturation"
    # stopped at the end of the epoch of the alarm, its checkpoint kept, and how to go on said
    assert alarm["epoch"] < 4 and load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["epoch"] == alarm["epoch"]
    (stop,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stopped by the training watchman")]
    assert "callbacks.health.action=warn" in stop and "ckpt_path=" in stop
    # without validation the watchman said which signals it could not watch
    (missing,) = [r.getMessage() for r in caplog.records if "not watched" in r.getMessage()]
    assert missing.startswith("health: not watched: collapse and stall")


@pytest.mark.slow
def test_a_discriminator_learning_100_times_too_fast_is_caught(tmp_path):
    """optimizer.d_lr=0.02: the Vanilla GAN's D swings to confidently wrong outputs; its BCE loss, averaged over
    the epoch, is many times its value at chance (docs/health.md)."""
    train(compose_run(tmp_path, "model=vanilla", "optimizer.d_lr=0.02", "trainer.limit_train_batches=40"))
    (alarm,) = _health(tmp_path)
    assert alarm["name"] == "divergence" and alarm["epoch"] == 0
    assert alarm["evidence"]["d_loss"] >= 10 * alarm["evidence"]["at chance"]


@pytest.mark.slow
def test_a_collapsing_recipe_raises_collapse(tmp_path):
    cfg = compose_run(tmp_path, *COLLAPSE, "trainer.max_epochs=3", "callbacks.health.collapse_after=1")
    train(cfg)
    alarms = _health(tmp_path)
    collapse = [a for a in alarms if a["name"] == "collapse"]
    assert collapse and collapse[0]["epoch"] == 1, alarms
    assert collapse[0]["evidence"]["val/min_class_share"] < 0.1 * collapse[0]["evidence"]["val/real_min_class_share"]


def test_divergence_is_reported_like_the_other_alarms(tmp_path):
    cfg = compose_run(tmp_path, "model=vanilla", "optimizer.lr=1e12", "trainer.limit_train_batches=20")
    with pytest.raises(UserError, match="training diverged"):
        run_job(cfg, train)
    result = json.loads((tmp_path / "metrics.json").read_text())
    assert result["status"] == "diverged"
    (alarm,) = result["health"]
    assert alarm["name"] == "divergence" and alarm["epoch"] == 0
    ((name, value),) = alarm["evidence"].items()
    assert name in ("train/d_loss", "train/g_loss") and value is None  # NaN or inf, written as null
    assert _texts(tmp_path)["health/divergence"] == [alarm["message"]]


def test_a_healthy_short_run_has_an_empty_health_list(trained_run):
    run = trained_run("dcgan")
    assert json.loads((run / "metrics.json").read_text())["health"] == []
    assert _health(run) == [] and replay(run) == []


@pytest.mark.parametrize("override, message", [
    ("callbacks.health.action=maybe", "callbacks.health.action='maybe' is not one of: warn, stop"),
    ("callbacks.health.stall_patience=0", "callbacks.health.stall_patience must be a positive integer"),
    ("callbacks.health.collapse_drop=-0.5", "callbacks.health.collapse_drop must be a number from 0 to 1"),
    ("callbacks.health.saturation_threshold.hinge=0", "callbacks.health.saturation_threshold.hinge must be a positive"),
])
def test_bad_watchman_settings_are_refused_before_a_run(override, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        compose_config([override])


def test_replay_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(UserError, match="no .hydra/config.yaml"):
        replay(tmp_path)


def test_the_evidence_of_an_alarm_is_finite_or_null():
    judge = Judge("wgan-gp", saturation_threshold={"wgan-gp": 20.0})
    (alarm,) = judge.training_epoch({"train/d_loss_epoch": -25.0, "train/d_real_epoch": 10.0,
                                     "train/d_fake_epoch": -15.0}, 0, 100)
    assert alarm.name == "saturation" and math.isclose(alarm.evidence["D(x)"], 10.0)
    assert "D(x) - D(G(z)) >= 20.0" in alarm.line()


def test_a_d_loss_far_above_chance_is_divergence_for_bce_and_hinge_only():
    epoch = {"train/d_real_epoch": 0.83, "train/d_fake_epoch": 0.2}
    assert [a.name for a in Judge("bce").training_epoch({**epoch, "train/d_loss_epoch": 277.0}, 0, 1)] == ["divergence"]
    assert Judge("bce").training_epoch({**epoch, "train/d_loss_epoch": 1.3}, 0, 1) == []
    assert [a.name for a in Judge("hinge").training_epoch({**epoch, "train/d_loss_epoch": 25.0}, 0, 1)] == ["divergence"]
    # a WGAN critic's loss has no value at chance
    judge = Judge("wgan-gp", saturation_threshold={"wgan-gp": 10.0})
    assert judge.training_epoch({**epoch, "train/d_loss_epoch": 277.0}, 0, 1) == []


@pytest.mark.slow
def test_a_resumed_run_keeps_the_watchmans_alarms_and_episodes(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    train(compose_run(first, *FROZEN_G, *DCGAN_BEFORE, "trainer.max_epochs=2", "~callbacks.quality",
                      "~callbacks.best_checkpoint"))
    (alarm,) = _health(first)
    assert alarm["name"] == "saturation"
    train(compose_run(second, *FROZEN_G, *DCGAN_BEFORE, "trainer.max_epochs=3", "~callbacks.quality",
                      "~callbacks.best_checkpoint",
                      f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}"))
    assert _health(second) == [alarm]  # still saturated at epoch 2: the same episode, not a second alarm
