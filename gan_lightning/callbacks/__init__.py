"""What a training run does around the module: its pictures (`samples`), the checkpoints that let a stopped run
carry on (`checkpoints`), the quality metrics at every validation (`quality`) and the watchman that reads the
run's signals (`health`). Each is a Lightning callback that conf/callbacks/default.yaml names; drop one with e.g.
`~callbacks.sample_grid`."""

from gan_lightning.callbacks.checkpoints import LAST, CheckpointOnInterrupt, LastCheckpoint, StopRequested
from gan_lightning.callbacks.health import TrainingHealth
from gan_lightning.callbacks.quality import LOGGED_QUALITY, ValidationQuality
from gan_lightning.callbacks.samples import SampleGrid, to_grid

__all__ = ["LAST", "LOGGED_QUALITY", "CheckpointOnInterrupt", "LastCheckpoint", "SampleGrid", "StopRequested",
           "TrainingHealth", "ValidationQuality", "to_grid"]
