"""Learning-rate schedule per iteration: linear warm-up, then cosine or polynomial decay to zero.

The state is only the step counter, so it is saved in checkpoints as plain data and a resumed run continues
on exactly the same curve.
"""
import math

import torch

from vfnet.errors import PlanError

POLY_EXPONENT = 0.9  # nnU-Net's poly schedule
SCHEDULES = ("cosine", "poly")


class WarmupDecaySchedule:
    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float, total_steps: int, warmup_steps: int,
                 kind: str = "cosine"):
        if kind not in SCHEDULES:
            raise PlanError(f"The plan's lr_schedule '{kind}' is not one of {', '.join(SCHEDULES)}.")
        self.optimizer = optimizer
        self.base_lr = base_lr
        self.total_steps = max(1, total_steps)
        self.warmup_steps = max(0, min(warmup_steps, self.total_steps - 1))
        self.kind = kind
        self.step_count = 0
        self._apply()

    def learning_rate(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / (self.warmup_steps + 1)
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        if self.kind == "cosine":
            return self.base_lr * 0.5 * (1 + math.cos(math.pi * progress))
        return self.base_lr * (1 - progress) ** POLY_EXPONENT

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(self.step_count)

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    @property
    def current_lr(self) -> float:
        return self.learning_rate(self.step_count)

    def state_dict(self) -> dict[str, int]:
        return {"step_count": self.step_count}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step_count = int(state["step_count"])
        self._apply()
