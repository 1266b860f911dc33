"""A training step without host syncs: what the loop must know about its steps, kept on the device.

Reading a value back from a GPU waits for every queued kernel, so the loop reads nothing per
step. :class:`StepTally` notes, on the device, the first step whose loss or gradient norm was not
finite (and that value) and the logged loss terms of the current step; :meth:`StepTally.read`
fetches all of it in one transfer, which the trainer does every ``train.log_every`` steps and
before anything is saved (a checkpoint never holds weights from after a non-finite step).
:func:`check_in_sync` verifies at the end that every process holds the same weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from accelerate import Accelerator

from samlora.errors import TrainingError

log = logging.getLogger(__name__)

_NONE = torch.iinfo(torch.int64).max


@dataclass
class Problem:
    """The first non-finite value seen: ``what`` (``loss`` or ``gradient norm``), its step and value."""

    what: str
    step: int
    value: float


class StepTally:
    """Non-finite flags and logged terms accumulated on ``device`` (see the module docstring)."""

    def __init__(self, device: torch.device):
        self.device = device
        self._first = torch.full((2,), _NONE, dtype=torch.int64, device=device)  # loss, gradient norm
        self._value = torch.zeros(2, dtype=torch.float32, device=device)
        self._terms: dict[str, torch.Tensor] = {}
        self._micro_batches = 0

    def _note(self, slot: int, value: torch.Tensor, step: int) -> None:
        value = value.detach().float().reshape(())
        bad = ~torch.isfinite(value) & (self._first[slot] == _NONE)
        self._first[slot] = torch.where(bad, step, self._first[slot])
        self._value[slot] = torch.where(bad, value, self._value[slot])

    def loss(self, loss: torch.Tensor, step: int, terms: dict[str, torch.Tensor]) -> None:
        """Note a micro-batch of optimiser step ``step``: its loss and its logged terms."""
        self._note(0, loss, step)
        for key, value in terms.items():  # logged terms: the mean over the accumulated micro-batches
            value = value.detach().float()
            self._terms[key] = self._terms[key] + value if key in self._terms else value
        self._micro_batches += 1

    def grad_norm(self, norm: torch.Tensor | float, step: int) -> None:
        """Note the gradient norm of optimiser step ``step``."""
        self._note(1, torch.as_tensor(norm, device=self.device), step)

    def end_step(self, keep: bool) -> dict[str, torch.Tensor]:
        """Close the step: its mean terms (still on the device) when ``keep``; reset for the next."""
        terms = {k: v / self._micro_batches for k, v in self._terms.items()} if keep else {}
        self._terms, self._micro_batches = {}, 0
        return terms

    def read(self, terms: dict[str, torch.Tensor] | None = None) -> tuple[Problem | None, dict[str, float]]:
        """One read-back: the first non-finite value (``None`` if there was none) and ``terms`` as floats."""
        names = list(terms or {})
        values = torch.cat([self._value, *(terms[k].reshape(1) for k in names)]).tolist()
        first = self._first.tolist()
        found = [
            Problem(what, step, values[slot])
            for slot, (what, step) in enumerate(zip(("loss", "gradient norm"), first))
            if step != _NONE
        ]
        problem = min(found, key=lambda p: (p.step, p.what != "loss"), default=None)
        return problem, dict(zip(names, values[2:]))


def check_in_sync(acc: Accelerator, model: torch.nn.Module) -> None:
    """With several processes, verify every one ends with the same trainable weights."""
    if acc.num_processes == 1:
        return
    flat = torch.cat([p.detach().double().flatten() for p in model.parameters() if p.requires_grad])
    weights = torch.arange(1, flat.numel() + 1, device=flat.device, dtype=torch.float64).remainder(97)
    checksum = torch.stack([flat.sum(), (flat * weights).sum()])[None]
    sums = acc.gather(checksum)
    if not torch.allclose(sums, sums[:1].expand_as(sums), rtol=1e-9, atol=1e-9):
        raise TrainingError(
            f"processes ended with different weights (checksums {sums.tolist()}); please report this"
        )
    if acc.is_main_process:
        log.info("all %d processes hold identical trainable weights", acc.num_processes)
