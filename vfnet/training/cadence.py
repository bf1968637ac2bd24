"""When the training loop validates and when it writes checkpoint_latest and progress.png.

On a GPU an epoch of the benchmark's plan takes well under a second, and validating, plotting with matplotlib
and writing two checkpoints after every epoch cost more than the epoch (issue 12). The plan sets both cadences:
`training.validation_every` epochs (always also at the last epoch, and at the collapse guard's check epoch,
which needs the validation predictions) and `training.checkpoint_every_seconds` (0: after every epoch).
"""
import time


def validation_due(epoch: int, epochs: int, every: int, check_epoch: int | None = None) -> bool:
    """Whether 0-based `epoch` is validated: every `every`-th epoch, the last one and the collapse check epoch."""
    done = epoch + 1
    return done % max(1, every) == 0 or done == epochs or done == check_epoch


class CheckpointClock:
    """Due after every epoch when `every_seconds` is 0, else once `every_seconds` have passed since the last write
    (or the start); always due at the last epoch. A resumed run therefore repeats at most the epochs of the last
    `every_seconds` plus the one that was interrupted."""

    def __init__(self, every_seconds: float, clock=time.monotonic):
        self.every_seconds = max(0.0, float(every_seconds))
        self.clock = clock
        self.last_write = clock()

    def due(self, last_epoch: bool) -> bool:
        return last_epoch or self.every_seconds == 0 or self.clock() - self.last_write >= self.every_seconds

    def written(self) -> None:
        self.last_write = self.clock()


def cadence_note(validation_every: int, checkpoint_every_seconds: float) -> str:
    """One sentence for the training log: what is written when, and how much a resume can lose."""
    validation = ("after every epoch" if validation_every <= 1 else
                  f"every {validation_every} epochs, at the collapse check and at the last epoch")
    if checkpoint_every_seconds <= 0:
        writes = "checkpoint_latest and progress.png after every epoch (--c repeats at most the interrupted epoch)"
    else:
        writes = (f"checkpoint_latest and progress.png at most every {checkpoint_every_seconds:g} s and at the last "
                  f"epoch (--c repeats at most the last {checkpoint_every_seconds:g} s of training plus the "
                  f"interrupted epoch)")
    return f"Validation {validation}; {writes}."
