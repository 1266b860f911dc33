"""Orchestration of ``samlora eval``: one base model, several adapters, several data sets, one report."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import peft
import torch

from samlora.config import Config
from samlora.data.layout import open_split
from samlora.errors import SamloraError
from samlora.lora.adapters import load_adapter, read_adapter, use_adapter
from samlora.models.device import pick_device
from samlora.models.loading import load_model
from samlora.tasks.common import checked, mask_options
from samlora.tasks.promptable.data import PromptableDataset

from .draw import overlay, panel
from .promptable import evaluate_dataset, per_image
from .report import BASE, EvalReport, model_label, summarize_results, write_report

log = logging.getLogger(__name__)


def dataset_labels(roots: list[str | Path]) -> list[str]:
    """One unique column name per data root: its folder name, with parent folders added while two
    roots share a name (``hospA/data``, ``hospB/data``), numbered as a last resort."""
    paths = [Path(r).resolve() for r in roots]
    depth = [1] * len(paths)
    labels = [p.name or str(p) for p in paths]
    for _ in range(max((len(p.parts) for p in paths), default=1)):
        clashes = {lab for lab in labels if labels.count(lab) > 1}
        if not clashes:
            return labels
        for i, p in enumerate(paths):
            if labels[i] in clashes and depth[i] < len(p.parts) - 1:
                depth[i] += 1
                labels[i] = "/".join(p.parts[-depth[i] :])
    seen: dict[str, int] = {}
    unique = []
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
        unique.append(lab if seen[lab] == 1 else f"{lab}-{seen[lab]}")
    return unique


def run_eval(
    cfg: Config,
    adapters: list[str | Path],
    datasets: list[str | Path],
    split: str,
    output: str | Path,
    base: bool = True,
    model_name: str | None = None,
    device: str = "auto",
    precision: str = "no",
) -> EvalReport:
    """Evaluate the base (if ``base``) and every adapter on every data set; write the reports.

    Args:
        cfg: evaluation and data-reading settings (``eval`` and ``data`` sections).
        adapters: adapter folders (``RUN/best``), one table row each.
        datasets: data roots, one table column each (split ``split`` of each).
        model_name: base model; default: the one the first adapter records.
    """
    if not adapters and not base:
        raise SamloraError("nothing to evaluate: give adapter folders and/or --base")
    metas = [read_adapter(a) for a in adapters]
    name = model_name or (metas[0].get("base_model") if metas else None) or cfg.model.name
    dev = pick_device(device)
    loaded = load_model(name, family=cfg.model.family, device=dev)
    if loaded.spec.task != "promptable":
        return run_concept_eval(cfg, loaded, adapters, datasets, split, output, base, dev, precision)
    model: torch.nn.Module = loaded.model
    labels = []
    for i, folder in enumerate(adapters):
        label = model_label(folder)
        label = label if label not in labels and label != BASE else f"{label}-{i}"
        model = load_adapter(loaded, model, folder, adapter_name=f"a{i}")
        model.to(dev)
        labels.append(label)
    rows = ([BASE] if base else []) + labels
    columns, splits = dataset_labels(datasets), []
    for root in datasets:
        ds = checked(
            open_split(root, split, cfg.data.format, **mask_options(cfg)),
            cfg.train.num_workers,
            cfg.data.max_pixels,
        )
        splits.append(PromptableDataset(ds, cfg, train=False))
    results = []
    for row in rows:
        for col, dataset in zip(columns, splits):
            with _active(model, row, labels):
                log.info("evaluating %s on %s (%d images)", row, col, len(dataset))
                results += evaluate_dataset(model, loaded, dataset, cfg, row, col, dev, precision)
    report = summarize_results(results, rows, columns)
    out = Path(output)
    write_report(report, out)
    if cfg.eval.panels:
        draw_panels(model, loaded, cfg, report, rows, labels, columns, splits, out, dev, precision)
    return report


class _active:
    """Context: make ``row`` the active model (an adapter, or the vanilla base with adapters disabled)."""

    def __init__(self, model: torch.nn.Module, row: str, labels: list[str]):
        self.model, self.row, self.labels = model, row, labels
        self.ctx = None

    def __enter__(self) -> None:
        if self.row == BASE:
            if isinstance(self.model, peft.PeftModel):
                self.ctx = self.model.disable_adapter()
                self.ctx.__enter__()
        else:
            use_adapter(self.model, f"a{self.labels.index(self.row)}")

    def __exit__(self, *exc) -> None:
        if self.ctx is not None:
            self.ctx.__exit__(*exc)


def draw_panels(model, loaded, cfg, report, rows, labels, columns, splits, out, dev, precision) -> None:
    """image | truth | adapter | vanilla panels of the N worst and N best images per data set."""
    ranked_by = labels[0] if labels else BASE
    for col, dataset in zip(columns, splits):
        scores = per_image([r for r in report.results if r.model == ranked_by and r.dataset == col])
        if not scores:
            continue
        names = {rec.file_name: i for i, rec in enumerate(dataset.split.images)}
        order = sorted(scores, key=lambda image: scores[image]["dice"])
        n = min(cfg.eval.panels, len(order))
        chosen = [("worst", order[:n]), ("best", order[::-1][:n])]
        for kind, images in chosen:
            for rank, image in enumerate(images):
                index = names[image]
                sample = dataset[index]
                picture = sample.image.permute(1, 2, 0).numpy()
                tiles = [("image", picture), ("ground truth", overlay(picture, sample.masks.numpy()))]
                for row in ([ranked_by] if ranked_by != BASE else []) + ([BASE] if BASE in rows else []):
                    with _active(model, row, labels):
                        masks = _predict_masks(model, loaded, dataset, index, cfg, dev, precision)
                    title = f"{row} dice {np.mean([r.dice for r in report.results if r.model == row and r.dataset == col and r.image == image]):.3f}"
                    tiles.append((title, overlay(picture, masks)))
                safe = str(Path(image).with_suffix("")).replace("/", "_")
                panel(tiles, path=out / "panels" / col / f"{kind}_{rank + 1:02d}_{safe}.png")


def _predict_masks(model, loaded, dataset, index, cfg, dev, precision) -> np.ndarray:
    from samlora.models.device import autocast_for
    from samlora.tasks.promptable.scoring import predict_rounds
    from samlora.tasks.promptable.segmenter import to_device

    batch = to_device([dataset[index]], loaded.preprocessing, dev)
    with torch.no_grad(), autocast_for(dev, precision):
        rounds, _ = predict_rounds(model, loaded, batch, cfg.eval.prompt, cfg.eval.clicks)
    return (rounds[-1][0] > cfg.eval.mask_threshold).cpu().numpy()


def run_concept_eval(cfg, loaded, adapters, datasets, split, output, base, dev, precision) -> dict:
    """Concept models: mAP and cgF1 per model x data set, every category queried on every image."""
    from samlora.data.loader import make_loader
    from samlora.models.device import autocast_for
    from samlora.tasks.concept.data import ConceptDataset
    from samlora.tasks.concept.forward import set_loss_from, target_size
    from samlora.tasks.concept.report import write_concept_report
    from samlora.tasks.concept.scoring import ConceptCollector, concept_metrics, evaluate_batch, post_from

    model: torch.nn.Module = loaded.model
    labels = []
    for i, folder in enumerate(adapters):
        label = model_label(folder)
        labels.append(label if label not in labels and label != BASE else f"{label}-{i}")
        model = load_adapter(loaded, model, folder, adapter_name=f"a{i}")
    model.to(dev).eval()
    rows = ([BASE] if base else []) + labels
    loss_fn, post = set_loss_from(cfg), post_from(cfg)
    mask_size = target_size(cfg, loaded.preprocessing)  # the loss's targets, as in training
    table: dict[str, dict[str, dict]] = {}
    predictions: dict[tuple[str, str], list[dict]] = {}
    columns = dataset_labels(datasets)
    for root, column in zip(datasets, columns):
        ds = checked(
            open_split(root, split, cfg.data.format, **mask_options(cfg)),
            cfg.train.num_workers,
            cfg.data.max_pixels,
        )
        dataset = ConceptDataset(ds, cfg, train=False, all_categories=True)
        for row in rows:
            collector = ConceptCollector(categories=dataset.names)
            with _active(model, row, labels):
                loader = make_loader(
                    dataset, range(len(dataset)), cfg.eval.batch_size, list, cfg.train.num_workers
                )
                for samples in loader:
                    with autocast_for(dev, precision):
                        evaluate_batch(model, loaded, samples, loss_fn, post, collector, mask_size)
            metrics = concept_metrics(collector.ground_truth(), collector.results, cfg.eval.score_threshold)
            metrics["categories"] = {int(k): v for k, v in dataset.names.items()}
            table.setdefault(row, {})[column] = metrics
            predictions[(row, column)] = collector.results
    return write_concept_report(Path(output), rows, columns, table, predictions)
