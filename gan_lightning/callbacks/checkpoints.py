"""The checkpoints that let a stopped run carry on: `last.ckpt` after every epoch (and every N batches), and on
SIGTERM or Ctrl-C.

Under DDP every process runs them: checkpoints are saved by all ranks together (`trainer.save_checkpoint` is
collective; rank 0 writes the file)."""

import logging
import signal
import threading
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


LAST = "last.ckpt"


class LastCheckpoint(Checkpoint):
    """`dirpath/last.ckpt` at the end of every epoch and every `every_n_batches` training batches (0: only at
    epoch ends), so a killed run loses at most that much. Counted in batches, not in Lightning's `global_step`,
    which grows by two per batch here (one D and one G optimizer step). (Lightning's own `save_last` only
    saves when its periodic checkpoint does.)

    A `Checkpoint`, so that Lightning calls its epoch end with the other checkpoint callbacks, after every plain
    callback and the module; placed after those (`train.py`), it saves their state of this epoch (the best FID so
    far, the best checkpoint's path), not of the last one, and a resumed run compares against the right best."""

    def __init__(self, dirpath: str, every_n_batches: int = 0):
        assert every_n_batches >= 0, every_n_batches  # checked in the config
        self.dirpath, self.every_n_batches = Path(dirpath), every_n_batches
        self.saved: Path | None = None  # set once last.ckpt has been written by this run

    def _save(self, trainer: L.Trainer) -> None:
        trainer.save_checkpoint(self.dirpath / LAST, weights_only=False)  # the whole state: optimizers, loops, RNG
        self.saved = self.dirpath / LAST

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.every_n_batches and (batch_idx + 1) % self.every_n_batches == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        self._save(trainer)


class StopRequested(KeyboardInterrupt):
    """Ctrl-C, acted on at the end of the batch in progress."""


class CheckpointOnInterrupt(L.Callback):
    """On SIGTERM or Ctrl-C, save `dirpath/last.ckpt` before the run ends, so it can be resumed.

    SIGTERM: Lightning stops at the next batch boundary (raising `SIGTERMException`). Ctrl-C: the first press
    likewise stops at the end of the current batch; a second press interrupts at once, and then nothing is
    saved, since the state may be half-way through a batch (between the D and the G step). `signal_name` and
    `saved` tell the entry point what happened."""

    def __init__(self, dirpath: str):
        self.dirpath = Path(dirpath)
        self.signal_name: str | None = None
        self.saved: Path | None = None
        self._stop = False
        self._previous_sigint = None

    def _on_sigint(self, signum, frame) -> None:
        if self._stop:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        log.warning("Ctrl-C: stopping after this batch and saving a checkpoint (press again to stop at once)")
        self._stop = True

    def on_train_start(self, trainer: L.Trainer, pl_module) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        stop = self._stop
        if trainer.world_size > 1:  # all ranks stop after the same batch, or the others wait for ever
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            self._stop = True
            raise StopRequested

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_train_end(self, trainer: L.Trainer, pl_module) -> None:
        self._restore_sigint()

    def on_exception(self, trainer: L.Trainer, pl_module, exception: BaseException) -> None:
        self._restore_sigint()
        if isinstance(exception, SIGTERMException):
            self.signal_name = "SIGTERM"
        elif isinstance(exception, KeyboardInterrupt):
            self.signal_name = "SIGINT"
        else:
            return
        if isinstance(exception, KeyboardInterrupt) and not isinstance(exception, StopRequested):
            log.warning("Interrupted in the middle of a batch: no checkpoint saved")
            return
        path = self.dirpath / LAST
        trainer.save_checkpoint(path, weights_only=False)  # every rank takes part; rank zero writes
        self.saved = path
        log.warning("%s: checkpoint saved to %s", self.signal_name, path)
