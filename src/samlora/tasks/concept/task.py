"""What the Trainer needs of the concept task (SAM 3 with text prompts): data, loss, validation."""

from __future__ import annotations

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, gather_object
from torch import nn

from samlora.config import Config
from samlora.data.loader import make_loader, shard_indices
from samlora.errors import ConfigError
from samlora.models.loading import LoadedModel
from samlora.tasks.common import open_training_splits

from .data import ConceptDataset, ConceptFrameItem, ConceptSample
from .forward import ConceptSegmenter, frame_pairs, loss_of, set_loss_from, target_size
from .scoring import ConceptCollector, concept_metrics, evaluate_batch, post_from

HIGHER_IS_BETTER = {"mAP", "cgF1"}
PROMPTLESS = ("geometry_encoder",)  # runs only on box/point prompts, which concept training never gives


def check_components(cfg: Config, loaded: LoadedModel) -> None:
    """Refuse LoRA (or full training) on a component that concept training never runs.

    Concept training prompts with text only, so SAM 3's geometry encoder (box and point prompts)
    gets no gradient: alone it fails in backward, with others its weights are saved untrained.
    ``lora.components: [all]`` includes it too, so that is refused as well (with the list to use).
    """
    listed = {*cfg.lora.components, *cfg.lora.train_fully}
    if "all" in cfg.lora.components:
        listed |= set(loaded.spec.components) - set(cfg.lora.train_fully)
    unused = [c for c in PROMPTLESS if c in listed and c in loaded.spec.components]
    if unused:
        rest = [c for c in loaded.spec.components if c not in PROMPTLESS]
        raise ConfigError(
            [
                f"lora.components / lora.train_fully include {unused}: concept (text-prompt) training gives no "
                "box or point prompts, so the geometry encoder never runs and its LoRA would stay untrained. "
                f"Fix: list the components to adapt without it, e.g. "
                f'--lora.components "[{", ".join(rest)}]"',
            ]
        )


def collate(samples: list[ConceptSample]) -> list[ConceptSample]:
    """Images differ in size and prompt count: a batch is the list."""
    return samples


class ConceptTask:
    """Text prompt -> every instance of the concept (SAM 3)."""

    collate = staticmethod(collate)

    def __init__(self, loaded: LoadedModel, cfg: Config):
        if loaded.tokenizer is None:
            raise ValueError("a concept model needs its tokenizer")
        check_components(cfg, loaded)
        self.loaded = loaded
        self.cfg = cfg
        self.loss_fn = set_loss_from(cfg)
        self.mask_size = target_size(cfg, loaded.preprocessing)
        self.class_names: dict[int, str] = {}

    def datasets(self) -> tuple[ConceptDataset, ConceptDataset | None]:
        splits = open_training_splits(self.cfg, self.loaded.preprocessing.frame)
        train = ConceptDataset(splits.train, self.cfg, train=True, images=splits.images)
        self.class_names = train.names  # the categories used as text prompts
        valid = (
            ConceptDataset(splits.valid, self.cfg, train=False, all_categories=True) if splits.valid else None
        )
        return train, valid

    @staticmethod
    def set_epoch(dataset: ConceptDataset, epoch: int) -> None:
        dataset.epoch = epoch

    def module(self, model: nn.Module) -> ConceptSegmenter:
        return ConceptSegmenter(model, self.loaded)

    def best_metric(self, name: str) -> str:
        """``auto`` selects by mAP.

        mAP ranks every detection (no score threshold), so it moves smoothly while training and is
        always defined; cgF1 is taken at one score threshold and is undefined (NaN) when the
        validation split has no negative or no positive pairs (e.g. one category in every image).
        """
        if name == "auto":
            return "mAP"
        if name not in ("mAP", "cgF1", "val_loss"):
            raise ValueError(
                f"train.best_metric '{name}' is not computed for concept models; use mAP, cgF1 or val_loss"
            )
        return "loss" if name == "val_loss" else name

    @staticmethod
    def higher_is_better(name: str) -> bool:
        return name in HIGHER_IS_BETTER

    def train_loss(self, module: nn.Module, samples: list[ConceptFrameItem], generator: torch.Generator):
        """The set loss of every (image, prompt) pair of the micro-batch, augmented on the device."""
        device = next(p for p in module.parameters()).device
        batch = frame_pairs(samples, self.loaded.preprocessing, device, self.mask_size)
        if not batch.targets:
            zero = sum(p.sum() for p in module.parameters() if p.requires_grad) * 0.0
            return zero, {"loss": zero.detach()}
        out = module(batch.pixels, batch.image_index, batch.texts, batch.text_index)
        return loss_of(self.loss_fn, out, batch)

    @torch.no_grad()
    def validate(
        self, model: nn.Module, dataset: ConceptDataset, accelerator: Accelerator
    ) -> dict[str, float]:
        """Validation loss over all image x category pairs, mAP and cgF1 (computed on the main process)."""
        was_training = model.training
        model.eval()
        indices = shard_indices(len(dataset), accelerator.process_index, accelerator.num_processes)
        loader = make_loader(dataset, indices, self.cfg.eval.batch_size, collate, self.cfg.train.num_workers)
        collector = ConceptCollector(categories=dataset.names)
        core = accelerator.unwrap_model(model)
        for samples in loader:
            with accelerator.autocast():
                evaluate_batch(
                    core, self.loaded, samples, self.loss_fn, post_from(self.cfg), collector, self.mask_size
                )
        parts = gather_object(
            [
                (
                    collector.images,
                    collector.annotations,
                    collector.results,
                    collector.loss_sum,
                    collector.pairs,
                )
            ]
        )
        metrics: list[dict | None] = [None]
        if accelerator.is_main_process:
            merged = ConceptCollector(categories=dataset.names)
            for images, anns, results, loss_sum, pairs in parts:
                offset = len(merged.annotations)
                merged.images += images
                merged.annotations += [dict(a, id=a["id"] + offset) for a in anns]
                merged.results += results
                merged.loss_sum += loss_sum
                merged.pairs += pairs
            full = concept_metrics(merged.ground_truth(), merged.results, self.cfg.eval.score_threshold)
            metrics = [
                {
                    "loss": merged.loss_sum / max(merged.pairs, 1),
                    **{
                        k: float(full[k])
                        for k in ("mAP", "mAP50", "mAP75", "cgF1", "cgF1_50", "cgF1_75", "pmF1", "IL_MCC")
                    },
                    "negative_pairs": float(full["negative_pairs"]),
                }
            ]
        broadcast_object_list(metrics)
        model.train(was_training)
        return metrics[0]
