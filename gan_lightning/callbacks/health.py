"""The training watchman: reads the signals a run already logs and says, by name, when the GAN goes wrong.

- `collapse`: at a validation, the samples cover fewer classes or fewer modes than they did: the rarest class's
  share, recall or coverage, each as a fraction of its real-data row (`val/real_*`), fell below `collapse_drop` of
  its best fraction so far, once that best reached `collapse_from`; or the rarest class is all but absent (under
  `collapse_absent` of its real share). The first `collapse_after` validations are not judged.
- `saturation`: D separates real and fake almost perfectly in the means of `saturation_epochs` epochs in a row,
  read from its loss and outputs per loss, since only BCE's outputs are probabilities (`saturated`).
- `stall`: `val/fid` has not improved for `stall_patience` validations: Lightning's `EarlyStopping`, of which
  this callback is one, decides it.
- `divergence`: a loss became NaN or inf (the module's guard stops the run; it is reported here like the others),
  or D's epoch-mean loss reached `divergence_factor` times its value at chance (BCE and hinge): D's outputs swing
  to extremes, confidently wrong on some images.

Each alarm is one log line (what, since when, the numbers, what to try), a text entry in TensorBoard
(`health/<name>`), and an entry of `health.json` in the run folder, which `metrics.json` takes over as `health`.
`action="stop"` ends the run at the end of the epoch of the alarm (its checkpoints kept). `replay` judges a run
from its TensorBoard logs with the same rules: `python scripts/check_health.py RUN_DIR`.
"""

import argparse
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from gan_lightning import options
from gan_lightning.callbacks.quality import ValidationQuality
from gan_lightning.errors import TrainingDiverged, UserError, fail
from gan_lightning.files import write_json
from gan_lightning.sweeps import HEALTH

log = logging.getLogger(__name__)

# what to try, per alarm
ADVICE = {
    "collapse": ("the generator draws fewer kinds of images than the data holds: resume from best_fid.ckpt with a lower "
                 "optimizer.lr, or train with minibatch standard deviation in D (model.discriminator.minibatch_std=8) "
                 "or DiffAugment (model.augment=[translation,cutout])"),
    "saturation": ("D wins outright, so G learns little: give D a lower learning rate (optimizer.d_lr), augment its "
                   "inputs (model.augment=[translation,cutout]) or check that G trains (optimizer.lr > 0)"),
    "stall": ("more epochs will not help at these settings: stop and use best_fid.ckpt, or decay the learning rates "
              "over the end of the budget (model.lr_decay_share=0.3)"),
    "divergence": ("try lower learning rates (optimizer.lr, optimizer.d_lr), or gradient clipping "
                   "(model.gradient_clip_val=1)"),
}

# the defaults of `saturated`'s thresholds, per loss (their reasons: conf/callbacks/default.yaml)
SATURATION_THRESHOLD = {"bce": 0.1, "hinge": 0.1, "wgan-gp": 10.0}

# D's loss when it says nothing (a logit of 0 for every image): 2 ln 2 for BCE, 2 for the hinge loss (the WGAN
# critic's loss has no such value)
CHANCE_LOSS = {"bce": 2 * math.log(2), "hinge": 2.0}

# the signals of mode collapse, each logged as val/<name> beside its real-data row val/real_<name>
COVERAGE_SIGNALS = ("min_class_share", "recall", "coverage")


@dataclass
class Alarm:
    """One alarm: which, at which epoch and step (batches trained) it fired, since which epoch its condition held,
    the numbers that show it, and what they mean in words."""

    name: str
    epoch: int
    step: int
    since: int
    evidence: dict[str, float]
    message: str = ""

    def line(self) -> str:
        numbers = ", ".join(f"{k} {v:.4g}" for k, v in self.evidence.items())
        since = f"since epoch {self.since}" if self.since != self.epoch else f"at epoch {self.epoch}"
        return f"health: {self.name} {since} (step {self.step}): {self.message or numbers}; {ADVICE[self.name]}"


def saturated(loss: str, d_loss: float, d_real: float, d_fake: float, threshold: Mapping[str, float]) -> bool:
    """Whether D's epoch means say it separates real from fake almost perfectly, for its loss:

    - bce: D's loss -log D(x) - log(1 - D(G(z))) at most `threshold["bce"]` (0.1: D(x) about 0.95 and D(G(z)) about
      0.05, or better, on average);
    - hinge: D's loss relu(1 - D(x)) + relu(1 + D(G(z))) at most `threshold["hinge"]`: nearly every image beyond
      the margin, where D's loss has no gradient left;
    - wgan-gp: the critic's outputs are unbounded and its loss is no measure of separation: its Wasserstein
      estimate D(x) - D(G(z)) at least `threshold["wgan-gp"]`."""
    if loss == "wgan-gp":
        return d_real - d_fake >= threshold[loss]
    return d_loss <= threshold[loss]


@dataclass
class Judge:
    """The rules, apart from Lightning: fed one validation or one training epoch at a time (live by the callback,
    afterwards by `replay`), it returns the alarms that start there. Its state: the best fraction of each coverage
    signal so far, the run of saturated epochs, and which alarms hold (an alarm fires when its condition starts to
    hold, and again only after it stopped holding)."""

    loss: str
    collapse_drop: float = 0.5
    collapse_from: float = 0.25
    collapse_absent: float = 0.1
    collapse_after: int = 2
    saturation_epochs: int = 1
    saturation_threshold: dict[str, float] = field(default_factory=lambda: dict(SATURATION_THRESHOLD))
    divergence_factor: float = 10.0
    best: dict[str, float] = field(default_factory=dict)
    validations: int = 0
    saturated_since: int | None = None
    saturated_epochs: int = 0
    active: dict[str, int] = field(default_factory=dict)  # alarm name -> the epoch since which it holds

    def validation(self, metrics: Mapping[str, float], epoch: int, step: int) -> list[Alarm]:
        """Mode collapse, from the quality metrics of one validation (`val/<name>` and `val/real_<name>`)."""
        fractions = {}
        for name in COVERAGE_SIGNALS:
            value, real = metrics.get(f"val/{name}"), metrics.get(f"val/real_{name}")
            if value is not None and real:
                fractions[name] = value / real
        if not fractions:
            return []
        self.validations += 1
        if self.validations <= self.collapse_after:  # G is still finding the classes: not judged, nor a best
            return self._update("collapse", False, epoch, step, {}, "")
        evidence, reasons = {}, []
        for name, fraction in fractions.items():
            best = self.best.get(name, 0.0)
            if best >= self.collapse_from and fraction < self.collapse_drop * best:
                evidence |= {f"val/{name}": metrics[f"val/{name}"], f"val/real_{name}": metrics[f"val/real_{name}"]}
                reasons.append(f"{name} fell to {fraction:.2f} of the real row (best {best:.2f})")
            self.best[name] = max(best, fraction)
        share = fractions.get("min_class_share")
        if share is not None and share < self.collapse_absent:
            evidence |= {"val/min_class_share": metrics["val/min_class_share"],
                         "val/real_min_class_share": metrics["val/real_min_class_share"]}
            reasons.append(f"the rarest class is drawn at {share:.2f} of its real share")
        return self._update("collapse", bool(evidence), epoch, step, evidence, "; ".join(reasons))

    def training_epoch(self, metrics: Mapping[str, float], epoch: int, step: int) -> list[Alarm]:
        """Saturation, and a D loss far above chance, from the epoch means of D's loss and outputs
        (`train/d_loss_epoch`, `train/d_real_epoch`, `train/d_fake_epoch`)."""
        names = ("train/d_loss_epoch", "train/d_real_epoch", "train/d_fake_epoch")
        if any(metrics.get(n) is None for n in names):
            return []
        d_loss, d_real, d_fake = (metrics[n] for n in names)
        if saturated(self.loss, d_loss, d_real, d_fake, self.saturation_threshold):
            self.saturated_since = epoch if self.saturated_since is None else self.saturated_since
            self.saturated_epochs += 1
        else:
            self.saturated_since, self.saturated_epochs = None, 0
        threshold = self.saturation_threshold[self.loss]
        evidence = {"D(x)": d_real, "D(G(z))": d_fake, "d_loss": d_loss, "threshold": threshold}
        what = "D(x) - D(G(z)) >=" if self.loss == "wgan-gp" else f"D's {self.loss} loss <="
        message = (f"{what} {threshold} for {self.saturated_epochs} epoch(s): D(x) {d_real:.4g}, "
                   f"D(G(z)) {d_fake:.4g}, d_loss {d_loss:.4g}")
        on = self.saturated_epochs >= self.saturation_epochs
        alarms = self._update("saturation", on, epoch, step, evidence, message, since=self.saturated_since)
        chance = CHANCE_LOSS.get(self.loss)
        if chance is not None:
            exploded = d_loss >= self.divergence_factor * chance
            message = (f"D's {self.loss} loss {d_loss:.4g} is {d_loss / chance:.0f} times its value at chance "
                       f"({chance:.3g}): D is confidently wrong on some images, its outputs swinging to extremes")
            alarms += self._update("divergence", exploded, epoch, step, {"d_loss": d_loss, "at chance": chance}, message)
        return alarms

    def stall(self, on: bool, epoch: int, step: int, evidence: dict[str, float], message: str) -> list[Alarm]:
        return self._update("stall", on, epoch, step, evidence, message)

    def _update(self, name: str, on: bool, epoch: int, step: int, evidence: dict[str, float], message: str,
                since: int | None = None) -> list[Alarm]:
        if not on:
            self.active.pop(name, None)
            return []
        if name in self.active:  # the same episode
            return []
        self.active[name] = epoch if since is None else since
        return [Alarm(name, epoch, step, self.active[name], evidence, message)]

    def state_dict(self) -> dict[str, Any]:
        return {"best": dict(self.best), "validations": self.validations, "saturated_since": self.saturated_since,
                "saturated_epochs": self.saturated_epochs, "active": dict(self.active)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best, self.validations = dict(state["best"]), int(state["validations"])
        self.saturated_since, self.saturated_epochs = state["saturated_since"], int(state["saturated_epochs"])
        self.active = dict(state["active"])


class TrainingHealth(EarlyStopping):
    """The watchman (see the module's docstring). An `EarlyStopping` on `val/fid` (`stall_patience`,
    `stall_min_delta`), so Lightning runs it with the monitoring callbacks, after the module has logged its epoch
    means. With `action="warn"` every alarm is reported and training goes on; with `"stop"` the first alarm also
    ends the run at the end of its epoch. `dirpath` is the run folder, where `health.json` is kept up to date."""

    def __init__(self, dirpath: str, action: str = "warn", stall_patience: int = 5, stall_min_delta: float = 0.0,
                 collapse_drop: float = 0.5, collapse_from: float = 0.25, collapse_absent: float = 0.1,
                 collapse_after: int = 2,
                 saturation_epochs: int = 1, saturation_threshold: Mapping[str, float] | None = None,
                 divergence_factor: float = 10.0):
        # the values come checked from the config (`gan_lightning.config.validate`)
        assert action in options.HEALTH_ACTIONS and stall_patience >= 1 and saturation_epochs >= 1, action
        super().__init__(monitor="val/fid", mode="min", patience=stall_patience, min_delta=stall_min_delta,
                         strict=False, check_finite=False, check_on_train_epoch_end=False)
        self.dirpath, self.action = Path(dirpath), action
        thresholds = dict(saturation_threshold or SATURATION_THRESHOLD)
        self.rules = {"collapse_drop": collapse_drop, "collapse_from": collapse_from, "collapse_absent": collapse_absent,
                      "collapse_after": collapse_after, "saturation_epochs": saturation_epochs,
                      "saturation_threshold": thresholds, "divergence_factor": divergence_factor}
        self.judge: Judge | None = None
        self.alarms: list[Alarm] = []
        self.stopped_by: Alarm | None = None  # the alarm that stopped the run (action="stop")
        self._restored: dict[str, Any] | None = None

    # ---- Lightning's hooks ------------------------------------------------------------------------------------

    def setup(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        loss = pl_module.hparams.loss
        assert loss in options.LOSSES and loss in self.rules["saturation_threshold"], loss
        self.judge = Judge(loss, **self.rules)
        if self._restored is not None:
            self._restore(self._restored)

    def on_train_start(self, trainer: L.Trainer, pl_module) -> None:
        self._write()
        if not any(isinstance(c, ValidationQuality) for c in trainer.callbacks):
            missing = "collapse and stall (they read the quality metrics: callbacks.quality)"
        elif trainer.limit_val_batches == 0 or trainer.check_val_every_n_epoch is None:
            missing = "collapse and stall (they read the quality metrics of each validation)"
        else:
            return
        log.info("health: not watched: %s; watched: saturation and divergence", missing)

    def _run_early_stopping_check(self, trainer: L.Trainer) -> None:
        """After each validation (EarlyStopping's hook): the stall and mode collapse."""
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        self._raise(trainer, self.judge_validation(metrics, trainer.current_epoch, _logging_step(trainer)))

    def judge_validation(self, metrics: Mapping[str, float], epoch: int, step: int) -> list[Alarm]:
        """Mode collapse (`Judge.validation`) and the stall: EarlyStopping's own decision on `val/fid`."""
        alarms = self.judge.validation(metrics, epoch, step)
        fid = metrics.get("val/fid")
        if fid is not None and math.isfinite(fid):
            stalled, _ = self._evaluate_stopping_criteria(torch.tensor(fid))
            best = float(self.best_score)
            evidence = {"val/fid": fid, "best val/fid": best, "validations without improvement": self.wait_count}
            message = f"val/fid {fid:.4g} has not improved on {best:.4g} for {self.wait_count} validation(s)"
            alarms += self.judge.stall(stalled, epoch, step, evidence, message)
        return alarms

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
        self._raise(trainer, self.judge.training_epoch(metrics, trainer.current_epoch, _logging_step(trainer)))

    def on_exception(self, trainer: L.Trainer, pl_module, exception: BaseException) -> None:
        """Divergence: the module's NaN guard stops the run (`TrainingDiverged`); reported here like the others."""
        if not isinstance(exception, TrainingDiverged):
            return
        name, epoch, _, value = exception.where or ("a loss on another process", trainer.current_epoch, 0, math.nan)
        name = f"train/{name}" if exception.where else name  # as the loss is logged
        alarm = Alarm("divergence", epoch, _logging_step(trainer), epoch, {name: value}, f"{name} = {value}")
        self.alarms.append(alarm)
        self._report(trainer, alarm)
        self._write()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "judge": self.judge.state_dict() if self.judge else None,
                "alarms": [asdict(a) for a in self.alarms]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if state_dict.get("judge") is None:
            return
        self._restored = state_dict  # setup may come before or after: either applies it
        if self.judge is not None:
            self._restore(state_dict)

    def _restore(self, state: dict[str, Any]) -> None:
        self.judge.load_state_dict(state["judge"])
        self.alarms = [Alarm(**a) for a in state["alarms"]]

    # ---- what an alarm does -----------------------------------------------------------------------------------

    def _raise(self, trainer: L.Trainer, alarms: list[Alarm]) -> None:
        if not alarms:
            return
        for alarm in alarms:
            self.alarms.append(alarm)
            self._report(trainer, alarm)
        self._write()
        if self.action == "stop" and self.stopped_by is None:
            trainer.should_stop = True  # every rank judges the same gathered metrics, so all stop together
            self.stopped_by, self.stopped_epoch = alarms[0], trainer.current_epoch

    @rank_zero_only
    def _report(self, trainer: L.Trainer, alarm: Alarm) -> None:
        log.warning(alarm.line())
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_text(f"health/{alarm.name}", alarm.line(), alarm.step)

    @rank_zero_only
    def _write(self) -> None:
        write_json(self.dirpath / HEALTH, [alarm_json(a) for a in self.alarms])


def _logging_step(trainer: L.Trainer) -> int:
    """Batches trained so far, counting the one in progress (Lightning's `global_step` counts the D and the G
    optimizer steps); TensorBoard's x axis is one less, the index of the last batch."""
    return trainer.fit_loop.total_batch_idx + 1


def alarm_json(alarm: Alarm) -> dict[str, Any]:
    """An alarm as `health.json` and `metrics.json` hold it: NaN and inf as null."""
    evidence = {k: float(v) if math.isfinite(float(v)) else None for k, v in alarm.evidence.items()}
    return {"name": alarm.name, "epoch": alarm.epoch, "step": alarm.step, "since": alarm.since, "evidence": evidence,
            "message": alarm.line()}


# ---- replay ---------------------------------------------------------------------------------------------------


def _observations(run_dir: Path) -> Iterator[tuple[str, int, int, dict[str, float]]]:
    """("validation" | "training epoch", epoch, step, metrics) in the order a live run sees them, from the run's
    TensorBoard logs. Where the epoch means of D's outputs are missing (runs of an older version), the logged
    steps of the epoch are averaged instead."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folders = sorted({p.parent for p in run_dir.glob("tensorboard/**/events.out.tfevents.*")})
    if not folders:
        raise UserError(f"{run_dir}: no TensorBoard logs (tensorboard/events.out.tfevents.*) to replay; give a "
                        "training run's folder, e.g. outputs/train/<date>_<time>")
    by_step: dict[int, dict[str, float]] = {}
    for folder in folders:
        events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            for event in events.Scalars(tag):
                by_step.setdefault(event.step, {})[tag] = event.value
    epoch, in_epoch = 0, {"train/d_real": [], "train/d_fake": []}
    for step in sorted(by_step):
        metrics = by_step[step]
        epoch = int(metrics.get("epoch", epoch))
        for name, values in in_epoch.items():
            if name in metrics:
                values.append(metrics[name])
        if "val/fid" in metrics or "val/d_real" in metrics:  # TensorBoard's step: the index of the last batch
            yield "validation", epoch, step + 1, metrics
        if "train/d_loss_epoch" in metrics:
            for name, values in in_epoch.items():
                if f"{name}_epoch" not in metrics and values:
                    metrics[f"{name}_epoch"] = sum(values) / len(values)
                values.clear()
            yield "training epoch", epoch, step + 1, metrics


def replay(run_dir: str | Path, overrides: Mapping[str, Any] | None = None) -> list[Alarm]:
    """The alarms the watchman raises on a run, from its logs and its config (`.hydra/config.yaml`: the loss, and
    `callbacks.health` where the run had it, else the defaults), changed by `overrides` (e.g. stall_patience)."""
    from omegaconf import OmegaConf

    run_dir = Path(run_dir)
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.is_file():
        raise UserError(f"{run_dir}: no .hydra/config.yaml; give a training run's folder, e.g. "
                        "outputs/train/<date>_<time>")
    cfg = OmegaConf.load(config_file)
    health = OmegaConf.select(cfg, "callbacks.health")
    settings = OmegaConf.to_container(health, resolve=False) if health is not None else {}
    settings = {k: v for k, v in settings.items() if not k.startswith("_") and k != "dirpath"} | dict(overrides or {})
    watchman = TrainingHealth(dirpath=str(run_dir), **settings)
    watchman.judge = Judge(str(cfg.model.loss), **watchman.rules)
    alarms = []
    for kind, epoch, step, metrics in _observations(run_dir):
        if kind == "validation":
            alarms += watchman.judge_validation(metrics, epoch, step)
        else:
            alarms += watchman.judge.training_epoch(metrics, epoch, step)
    return alarms


def main(argv: list[str] | None = None) -> None:
    """`python scripts/check_health.py RUN_DIR [RUN_DIR ...]`: the watchman's alarms for training runs, replayed
    from their TensorBoard logs (a sweep folder: every job in it)."""
    parser = argparse.ArgumentParser(description=main.__doc__.split(":", 1)[1].strip())
    parser.add_argument("run_dirs", nargs="+", help="training run folders (or sweep folders)")
    args = parser.parse_args(argv)
    try:
        results = []
        for given in map(Path, args.run_dirs):
            if not given.is_dir():
                raise UserError(f"{given}: no such folder; give a training run's folder, e.g. "
                                "outputs/train/<date>_<time>")
            runs = sorted(p.parent.parent for p in given.rglob(".hydra/config.yaml")) or [given]
            results += [(run, replay(run)) for run in runs]
    except UserError as e:
        fail(e)
    for run, alarms in results:
        print(f"{run}: {', '.join(f'{a.name} (epoch {a.epoch})' for a in alarms) or 'no alarm'}")
        for alarm in alarms:
            print(f"  {alarm.line()}")
