"""Orchestration of ``samlora eval``: one base model, several adapters, several data sets, one report."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

from samlora import __version__
from samlora.config import Config
from samlora.data.layout import open_split
from samlora.errors import SamloraError
from samlora.lora.adapters import read_adapter
from samlora.models.device import pick_device
from samlora.models.loading import load_model
from samlora.tasks.common import checked, mask_options
from samlora.tasks.promptable.data import PromptableDataset

from .detections import concept_figures, concept_panels
from .page import write_html
from .panels import draw_panels
from .promptable import evaluate_dataset
from .report import BASE, EvalReport, prompt_text, summarize_results, write_report
from .rows import active, load_rows

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
    retain: list[str | Path] | None = None,
) -> EvalReport:
    """Evaluate the base (if ``base``) and every adapter on every data set; write the reports.

    Args:
        cfg: evaluation and data-reading settings (``eval`` and ``data`` sections).
        adapters: adapter folders (``RUN/best``), one table row each.
        datasets: data roots, one table column each (split ``split`` of each).
        model_name: base model; default: the one the first adapter records.
        retain: data roots marked as the base model's home domain (evaluated as columns too, after
            ``datasets`` unless listed there): the report compares vanilla and each adapter there and
            flags a drop beyond the CI.
    """
    if not adapters and not base:
        raise SamloraError("nothing to evaluate: give adapter folders and/or --base")
    retain = [Path(r) for r in retain or []]
    if retain and not base:
        raise SamloraError("--retain compares the adapters with the vanilla base model there: add --base")
    roots = [Path(d) for d in datasets]
    roots += [r for r in retain if r.resolve() not in {d.resolve() for d in roots}]
    metas = [read_adapter(a) for a in adapters]
    name = model_name or (metas[0].get("base_model") if metas else None) or cfg.model.name
    dev = pick_device(device)
    loaded = load_model(name, family=cfg.model.family, device=dev)
    if loaded.spec.task != "promptable":
        return run_concept_eval(cfg, loaded, adapters, roots, split, output, base, dev, precision)
    model, labels = load_rows(loaded, adapters, dev)
    rows = ([BASE] if base else []) + labels
    columns, splits = dataset_labels(roots), []
    for root in roots:
        ds = checked(
            open_split(root, split, cfg.data.format, **mask_options(cfg)),
            cfg.train.num_workers,
            cfg.data.max_pixels,
        )
        splits.append(PromptableDataset(ds, cfg, train=False))
    results = []
    for row in rows:
        for col, dataset in zip(columns, splits):
            with active(model, row, labels):
                log.info("evaluating %s on %s (%d images)", row, col, len(dataset))
                results += evaluate_dataset(model, loaded, dataset, cfg, row, col, dev, precision)
    home = [col for col, root in zip(columns, roots) if root.resolve() in {r.resolve() for r in retain}]
    settings = eval_settings(cfg, split, name, dict(zip(labels, adapters)), dict(zip(columns, roots)), home)
    report = summarize_results(results, rows, columns, retain=home, settings=settings)
    out = Path(output)
    if cfg.eval.panels:
        report.panels = draw_panels(
            model, loaded, cfg, results, rows, labels, columns, splits, out, dev, precision
        )
    write_report(report, out)
    return report


def eval_settings(
    cfg: Config, split: str, base_model: str, adapters: dict, datasets: dict, retain: list[str]
) -> dict:
    """The report header: the prompt every model got and what every row shares."""
    ev = cfg.eval
    return {
        "prompt": ev.prompt,
        "prompt_text": prompt_text(ev.prompt, ev.clicks, ev.num_points, ev.feed_mask),
        "clicks": ev.clicks if ev.prompt == "clicks" else None,
        "feed_mask": ev.feed_mask if ev.prompt == "clicks" else None,
        "num_points": ev.num_points if ev.prompt == "points" else None,
        "mask_threshold": ev.mask_threshold,
        "split": split,
        "base_model": base_model,
        "adapters": {k: str(v) for k, v in adapters.items()},
        "datasets": {k: str(v) for k, v in datasets.items()},
        "retain": retain,
        "samlora_version": __version__,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def run_concept_eval(cfg, loaded, adapters, datasets, split, output, base, dev, precision) -> dict:
    """Concept models: mAP and cgF1 per model x data set, every category queried on every image."""
    from samlora.data.loader import make_loader
    from samlora.models.device import autocast_for
    from samlora.tasks.concept.data import ConceptDataset
    from samlora.tasks.concept.forward import set_loss_from, target_size
    from samlora.tasks.concept.report import write_concept_report
    from samlora.tasks.concept.scoring import ConceptCollector, concept_metrics, evaluate_batch, post_from

    model, labels = load_rows(loaded, adapters, dev)
    model.eval()
    rows = ([BASE] if base else []) + labels
    loss_fn, post = set_loss_from(cfg), post_from(cfg)
    mask_size = target_size(cfg, loaded.preprocessing)  # the loss's targets, as in training
    table: dict[str, dict[str, dict]] = {}
    predictions: dict[tuple[str, str], list[dict]] = {}
    columns = dataset_labels(datasets)
    out, panels = Path(output), []
    for root, column in zip(datasets, columns):
        ds = checked(
            open_split(root, split, cfg.data.format, **mask_options(cfg)),
            cfg.train.num_workers,
            cfg.data.max_pixels,
        )
        dataset = ConceptDataset(ds, cfg, train=False, all_categories=True)
        for row in rows:
            collector = ConceptCollector(categories=dataset.names)
            with active(model, row, labels):
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
        if cfg.eval.panels:
            found = {row: predictions[(row, column)] for row in rows}
            panels += concept_panels(
                dataset,
                column,
                collector.ground_truth(),
                found,
                cfg.eval.score_threshold,
                cfg.eval.panels,
                out,
            )
    report = write_concept_report(out, rows, columns, table, predictions)
    sections = [
        (
            f"{c}: text prompts and detections",
            [(p["image"], out / p["file"]) for p in panels if p["dataset"] == c],
        )
        for c in columns
    ]
    title = "samlora concept evaluation"
    figures = concept_figures(table, rows, columns)
    write_html(out, title, (out / "report.md").read_text(), figures, [s for s in sections if s[1]])
    return report
