"""The run's pictures: the fixed-noise sample grid of every epoch, and all of them as an animation at the end.

Under DDP every process runs the callback; pictures are made and written by rank 0 only."""

import logging
import shutil
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from torchvision.utils import make_grid, save_image

from gan_lightning.errors import UserError
from gan_lightning.sampling.outputs import EPOCH_GRID, progress_gif

log = logging.getLogger(__name__)


def to_grid(images, nrow: int):
    """Images (B, C, H, W) in [-1, 1] -> one grid image (C, H', W') in [0, 1]."""
    return make_grid(images, nrow=nrow, padding=2, normalize=True, value_range=(-1, 1))


class SampleGrid(L.Callback):
    """After every `every_n_epochs` epochs, the generator's fixed-noise samples as a grid:
    saved to `dirpath/epoch_XXX.png` and logged to TensorBoard under `samples`. At the end of training, all the
    grids of the folder become one animated GIF, `dirpath/progress.gif` (`progress_gif=False`: not), also when
    training ends early (SIGTERM, Ctrl-C, a diverged loss), so a stopped run shows how far it got. A run resumed
    from another run's checkpoint (`<run>/checkpoints/*.ckpt`) first copies that run's grids of the epochs it
    had finished, so its GIF shows the whole training."""

    def __init__(self, dirpath: str, every_n_epochs: int = 1, progress_gif: bool = True):
        self.dirpath = Path(dirpath)
        self.every_n_epochs = every_n_epochs
        self.progress_gif = progress_gif

    def on_train_start(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.ckpt_path is None or not trainer.is_global_zero:
            return
        checkpoints = Path(trainer.ckpt_path).resolve().parent
        earlier = checkpoints.parent / self.dirpath.name
        if checkpoints.name != "checkpoints" or not earlier.is_dir() or earlier == self.dirpath.resolve():
            return  # not a run folder's checkpoint, or resumed in its own run folder
        self.dirpath.mkdir(parents=True, exist_ok=True)
        for grid in earlier.glob("epoch_*.png"):
            match = EPOCH_GRID.fullmatch(grid.name)
            if match and int(match.group(1)) < trainer.current_epoch and not (self.dirpath / grid.name).exists():
                shutil.copy2(grid, self.dirpath / grid.name)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        epoch = trainer.current_epoch
        if (epoch + 1) % self.every_n_epochs or not trainer.is_global_zero:
            return
        images, nrow = pl_module.fixed_samples()
        grid = to_grid(images.float().cpu(), nrow)
        self.dirpath.mkdir(parents=True, exist_ok=True)
        save_image(grid, self.dirpath / f"epoch_{epoch:03d}.png")
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("samples", grid, global_step=epoch)

    def on_train_end(self, trainer: L.Trainer, pl_module) -> None:
        self._write_progress_gif(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module, exception: BaseException) -> None:
        self._write_progress_gif(trainer)

    def _write_progress_gif(self, trainer: L.Trainer) -> None:
        if not self.progress_gif or not trainer.is_global_zero or not self.dirpath.is_dir():
            return
        try:
            path = progress_gif(self.dirpath)
        except UserError as e:  # no grid saved (e.g. fewer epochs than every_n_epochs): nothing to animate
            log.info("No training progression GIF: %s", e)
            return
        log.info("Training progression: %s", path)
