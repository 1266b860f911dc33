"""What the Trainer needs of the promptable task: data, a training loss, validation."""

from __future__ import annotations

import torch
from accelerate import Accelerator
from torch import nn

from samlora.config import Config
from samlora.data.loader import make_loader, shard_indices
from samlora.errors import ConfigError
from samlora.models.loading import LoadedModel
from samlora.tasks.common import open_training_splits

from .data import FrameItem, PromptableDataset, PromptableSample
from .embeddings import embedding_cache_for
from .frames import frame_batch
from .scoring import object_scores, predict_rounds
from .segmenter import DeviceBatch, PromptableObjective, PromptableSegmenter, to_device

MODES_WITH_BOX = ("box", "box+points")
MODES_WITH_POINTS = ("points", "box+points")


def collate(samples: list[PromptableSample]) -> list[PromptableSample]:
    """Images differ in size: a batch is the list; the device does the batching."""
    return samples


class PromptableTask:
    """Box/point/mask prompts -> one mask per object (SAM, SAM-HQ, SAM 2, SAM 3 tracker)."""

    collate = staticmethod(collate)

    def __init__(self, loaded: LoadedModel, cfg: Config):
        self.loaded = loaded
        self.cfg = cfg
        self.embedding_cache = None
        self.objective = PromptableObjective(cfg, loaded.preprocessing)
        self.class_names: dict[int, str] = {}

    def datasets(self) -> tuple[PromptableDataset, PromptableDataset | None]:
        splits = open_training_splits(self.cfg, self.loaded.preprocessing.frame)
        self.class_names = splits.train.category_names
        train = PromptableDataset(splits.train, self.cfg, train=True, images=splits.images)
        valid = PromptableDataset(splits.valid, self.cfg, train=False) if splits.valid is not None else None
        return train, valid

    @staticmethod
    def set_epoch(dataset: PromptableDataset, epoch: int) -> None:
        dataset.epoch = epoch

    def module(self, model: nn.Module) -> PromptableSegmenter:
        self.embedding_cache = embedding_cache_for(
            self.cfg, model, self.loaded, next(model.parameters()).device
        )
        return PromptableSegmenter(model, self.loaded)

    def best_metric(self, name: str) -> str:
        if name == "auto":
            return "dice"
        if name not in ("dice", "iou", "val_loss"):
            raise ConfigError(
                [
                    f"train.best_metric '{name}' is not computed for promptable models; "
                    "use auto (dice), dice, iou or val_loss"
                ]
            )
        return "loss" if name == "val_loss" else name

    @staticmethod
    def higher_is_better(name: str) -> bool:
        return name != "loss"

    def train_loss(
        self, module: nn.Module, items: list[FrameItem], generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of one micro-batch: a prompt mode drawn for the batch, then clicks if configured.

        The batch is augmented and its prompts made on the device (:func:`frame_batch`); with the
        frozen-encoder cache, images seen before are not encoded again.
        """
        device = next(p for p in module.parameters()).device
        if sum(i.num_objects for i in items) == 0:  # only negative images: keep every process in step
            zero = sum(p.sum() for p in module.parameters() if p.requires_grad) * 0.0
            return zero, {"loss": zero.detach()}
        pr = self.cfg.prompts
        mode = pr.modes[int(torch.randint(len(pr.modes), (1,), generator=generator))]
        batch = frame_batch(
            items, self.loaded.preprocessing, self.cfg, device, points=mode in MODES_WITH_POINTS
        )
        embeddings = None
        if self.embedding_cache is not None:
            segmenter = getattr(module, "module", module)  # inside DDP
            embeddings = self.embedding_cache.embeddings(
                segmenter.model, [i.index for i in items], batch.pixels
            )
        boxes = batch.boxes if mode in MODES_WITH_BOX else None
        points = batch.points if mode in MODES_WITH_POINTS else None
        labels = batch.labels if mode in MODES_WITH_POINTS else None
        multimask = pr.multimask and mode == "points"
        targets = self.objective.targets(batch)
        click_targets = targets > 0.5 if targets is not None and pr.correction_clicks else None
        if pr.correction_clicks and click_targets is None:
            click_targets = (
                torch.cat([self.loaded.preprocessing.masks(m, g) for m, g in zip(batch.masks, batch.geoms)])
                > 0.5
            )
        rounds = module(
            batch.pixels, batch.image_index, boxes, points, labels, multimask,
            clicks=pr.correction_clicks, click_targets=click_targets, generator=generator, embeddings=embeddings,
        )  # fmt: skip
        return self.objective(rounds, batch, targets)

    @torch.no_grad()
    def validate(
        self, model: nn.Module, dataset: PromptableDataset, accelerator: Accelerator
    ) -> dict[str, float]:
        """Validation loss and mean Dice/IoU over all objects, reduced across processes."""
        was_training = model.training
        model.eval()
        ev = self.cfg.eval
        device = accelerator.device
        indices = shard_indices(len(dataset), accelerator.process_index, accelerator.num_processes)
        loader = make_loader(dataset, indices, ev.batch_size, collate, self.cfg.train.num_workers)
        sums = torch.zeros(4, device=device, dtype=torch.float64)  # loss*n, dice, iou, n
        for samples in loader:
            batch: DeviceBatch = to_device(samples, self.loaded.preprocessing, device)
            if batch.num_objects == 0:
                continue
            with accelerator.autocast():
                rounds, first = predict_rounds(
                    model, self.loaded, batch, ev.prompt, ev.clicks, feed_mask=ev.feed_mask
                )
                loss, _ = self.objective([first], batch, self.objective.targets(batch))
            dice, iou = object_scores(rounds[-1], batch, [s.ignore for s in samples], ev.mask_threshold)
            n = batch.num_objects
            sums += torch.tensor(
                [loss.item() * n, dice.sum().item(), iou.sum().item(), n], device=device, dtype=torch.float64
            )
        sums = accelerator.reduce(sums, reduction="sum")
        model.train(was_training)
        n = max(sums[3].item(), 1.0)
        return {
            "loss": sums[0].item() / n,
            "dice": sums[1].item() / n,
            "iou": sums[2].item() / n,
            "objects": sums[3].item(),
        }
