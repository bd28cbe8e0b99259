"""The one exception type that means "the user asked for something wrong", and how entry points end on it.

Entry points catch it, print its message as a single line and exit with code 2; anything else is a bug
and keeps its traceback.
"""

import signal
import sys
from pathlib import Path


class UserError(Exception):
    """Bad input: a config value, a file, a request. The message says what is wrong and what to do."""


def fail(error: UserError) -> None:
    """The end of a command that was asked for something wrong: one line on stderr, exit code 2."""
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


def stop(error: BaseException, going_on: str) -> None:
    """The end of a long tool stopped by SIGTERM or Ctrl-C (`TrainingInterrupted`, `KeyboardInterrupt`): one line
    saying what is kept and how to go on, and the shell's exit code (143 or 130)."""
    name = error.signal_name if isinstance(error, TrainingInterrupted) else "SIGINT"
    print(f"stopped by {name}: {going_on}", file=sys.stderr)
    sys.exit(128 + signal.Signals[name])


class TrainingDiverged(UserError):
    """A loss became NaN or infinite: training further would only train on garbage. Usually the recipe's fault
    (a learning rate too high), so it ends a run like a bad value does. `where`: (loss name, epoch, global step,
    value), when known."""

    def __init__(self, message: str, where: tuple[str, int, int, float] | None = None):
        super().__init__(message)
        self.where = where


class TrainingStopped(Exception):
    """The training watchman stopped the run on an alarm (`callbacks.health.action=stop`): not an error, not a
    completed run either. `alarm` names it; `metrics` are the run's last logged metrics."""

    def __init__(self, alarm: str, message: str, metrics: dict[str, float]):
        super().__init__(message)
        self.alarm, self.metrics = alarm, metrics


class TrainingInterrupted(Exception):
    """SIGTERM or Ctrl-C stopped the run; `checkpoint` is where it was saved (None: nothing saved)."""

    def __init__(self, signal_name: str, checkpoint: Path | None):
        super().__init__(f"interrupted by {signal_name}")
        self.signal_name, self.checkpoint = signal_name, checkpoint

    @property
    def exit_code(self) -> int:
        return 128 + signal.Signals[self.signal_name]  # the shell's convention: 130 for SIGINT, 143 for SIGTERM
