"""What samlora knows about each model family of the Segment Anything line.

A :class:`FamilySpec` names the transformers class, the task, the named
components (each a set of top-level module names), the linear-layer kinds that
LoRA short names map to, and the preprocessing the family was trained with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Task = Literal["promptable", "concept"]
ResizeMode = Literal["longest_side", "square"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)

# Linear-layer kinds, recognised from a module's path inside its component.
# A module may have one kind; everything else linear is of kind "other".
LINEAR_KINDS: dict[str, str] = {
    "qkv": r"(^|\.)qkv$",
    "q_proj": r"(^|\.)q_proj$",
    "k_proj": r"(^|\.)k_proj$",
    "v_proj": r"(^|\.)v_proj$",
    "out_proj": r"(^|\.)(out_proj|o_proj|attn\.proj|attention\.proj)$",
    "mlp": r"(^|\.)mlp\.(lin1|lin2|fc1|fc2|proj_in|proj_out|layers\.\d+)$",
}

# Short names users may give in ``lora.target_modules`` and the kinds they mean.
TARGET_ALIASES: dict[str, tuple[str, ...]] = {
    "q_proj": ("q_proj",),
    "k_proj": ("k_proj",),
    "v_proj": ("v_proj",),
    "q": ("q_proj",),
    "k": ("k_proj",),
    "v": ("v_proj",),
    "qkv": ("qkv", "q_proj", "k_proj", "v_proj"),
    "out_proj": ("out_proj",),
    "o_proj": ("out_proj",),
    "attention": ("qkv", "q_proj", "k_proj", "v_proj", "out_proj"),
    "mlp": ("mlp",),
}
ALL_LINEAR = "all-linear"


def linear_kind(relative_name: str) -> str:
    """Kind of a linear layer from its dotted path, e.g. ``layers.3.attn.qkv`` -> ``qkv``."""
    for kind, pattern in LINEAR_KINDS.items():
        if re.search(pattern, relative_name):
            return kind
    return "other"


@dataclass(frozen=True)
class FamilySpec:
    """Static description of one model family.

    Attributes:
        name: samlora's family name (``model.family``).
        model_types: ``config.model_type`` values that identify the family.
        model_class: transformers class name that loads it.
        task: ``promptable`` (box/point/mask prompt -> one mask) or ``concept``
            (text prompt -> every instance).
        components: component name -> top-level module names it consists of.
        fused_qkv: the vision encoder computes q, k, v with one fused linear.
        resize: ``longest_side`` (scale the longest side to the input size, pad
            bottom/right) or ``square`` (resize both sides to the input size).
        mean, std: per-channel normalisation on 0..1 pixel values.
        prompt_types: prompt kinds the family accepts.
    """

    name: str
    model_types: tuple[str, ...]
    model_class: str
    task: Task
    components: dict[str, tuple[str, ...]]
    fused_qkv: bool
    resize: ResizeMode
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    prompt_types: tuple[str, ...] = field(default=("box", "points", "mask"))

    def component_of(self, module_name: str) -> str | None:
        """Component a module belongs to, from its dotted name (``None`` if none)."""
        top = module_name.split(".", 1)[0]
        for component, tops in self.components.items():
            if top in tops:
                return component
        return None


_PROMPTABLE_COMPONENTS = {
    "vision_encoder": ("vision_encoder",),
    "prompt_encoder": ("prompt_encoder", "shared_image_embedding"),
    "mask_decoder": ("mask_decoder",),
}


def _promptable(
    name: str, model_class: str, fused_qkv: bool, resize: ResizeMode, mean_std: tuple
) -> FamilySpec:
    """A promptable family: one model type named like the family, the three SAM components."""
    mean, std = mean_std
    return FamilySpec(
        name=name,
        model_types=(name,),
        model_class=model_class,
        task="promptable",
        components=_PROMPTABLE_COMPONENTS,
        fused_qkv=fused_qkv,
        resize=resize,
        mean=mean,
        std=std,
    )


FAMILIES: dict[str, FamilySpec] = {
    spec.name: spec
    for spec in (
        _promptable("sam", "SamModel", True, "longest_side", (IMAGENET_MEAN, IMAGENET_STD)),
        _promptable("sam_hq", "SamHQModel", True, "longest_side", (IMAGENET_MEAN, IMAGENET_STD)),
        _promptable("sam2", "Sam2Model", True, "square", (IMAGENET_MEAN, IMAGENET_STD)),
        _promptable("sam3_tracker", "Sam3TrackerModel", False, "square", (HALF, HALF)),
        FamilySpec(
            name="sam3",
            model_types=("sam3", "sam3_video"),
            model_class="Sam3Model",
            task="concept",
            components={
                "vision_encoder": ("vision_encoder",),
                "text_encoder": ("text_encoder", "text_projection"),
                "geometry_encoder": ("geometry_encoder",),
                "detr_encoder": ("detr_encoder",),
                "detr_decoder": ("detr_decoder", "dot_product_scoring"),
                "mask_decoder": ("mask_decoder",),
            },
            fused_qkv=False,
            resize="square",
            mean=HALF,
            std=HALF,
            prompt_types=("text", "box"),
        ),
    )
}

FAMILY_NAMES = tuple(FAMILIES)


def family_for_model_type(model_type: str) -> FamilySpec | None:
    """The family whose configs carry this ``model_type``, if any."""
    for spec in FAMILIES.values():
        if model_type in spec.model_types:
            return spec
    return None
