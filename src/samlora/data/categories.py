"""Which categories of a COCO split are concepts (text prompts) and which are only labels.

Roboflow exports add a super-category (often id 0, sometimes with the very name of a real class,
e.g. ``{0: 'CRACKS', 1: 'CRACKS'}``) that no annotation uses and that the real categories name as
their ``supercategory``. Used as a text prompt it would be queried as a negative with the same text
as a positive, so training would teach "crack is absent" next to "crack is present" and evaluation
would score a perfect model's correct answer as a false positive.

A category is therefore **not a prompt** (neither positive nor negative, in training and in
evaluation) when it has no annotation in the split AND either its name is another category's
``supercategory`` or its name equals another category's name case-insensitively.
"""

from __future__ import annotations

from .records import SegDataset


def annotated_category_ids(split: SegDataset) -> set[int]:
    """Category ids used by at least one annotation (crowd included) of ``split``."""
    return {obj.category_id for record in split.images for obj in record.objects}


def non_prompt_categories(split: SegDataset) -> dict[int, str]:
    """Category id -> why it is not a text prompt, for the unannotated duplicates/super-categories.

    Only COCO splits list their objects without decoding; mask folders are returned as they are
    (empty dict).
    """
    if split.format != "coco":
        return {}
    used = annotated_category_ids(split)
    out: dict[int, str] = {}
    for cat in split.categories:
        if cat.id in used:
            continue
        others = [c for c in split.categories if c.id != cat.id]
        parents = [c for c in others if c.supercategory and c.supercategory.lower() == cat.name.lower()]
        twins = [c for c in others if c.name.strip().lower() == cat.name.strip().lower()]
        if parents:
            out[cat.id] = f"super-category of {', '.join(repr(c.name) for c in parents[:3])} without objects"
        elif twins:
            out[cat.id] = f"no objects and the same name as category id {twins[0].id} ('{twins[0].name}')"
    return out


def prompt_categories(split: SegDataset) -> dict[int, str]:
    """Category id -> name of the categories queried as text prompts (see the module docstring)."""
    skipped = non_prompt_categories(split)
    return {cid: name for cid, name in split.category_names.items() if cid not in skipped}
