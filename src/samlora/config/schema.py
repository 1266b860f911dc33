"""The typed configuration tree: every key, its default and its help line.

Every key lives in one dataclass below, with its default and a one-line
docstring that becomes its ``--help`` text. A configuration is read from YAML
(and ``--section.key value`` overrides) into plain dicts, then checked as a
whole by :func:`~samlora.config.io.config_from_dict`: every unknown
key (with the closest valid key), wrong type and bad value is reported at once
in one :class:`ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ModelConfig:
    """Which base model to adapt."""

    name: str = "facebook/sam-vit-base"
    """Hub id, local folder saved with save_pretrained, or a samlora preset (samlora info --presets)."""
    family: Literal["auto", "sam", "sam_hq", "sam2", "sam3", "sam3_tracker"] = "auto"
    """Model family; auto reads it from the model's config."""
    gradient_checkpointing: bool = False
    """Recompute the vision backbone's activations in the backward pass to save memory."""
    attention: Literal["sdpa", "flex"] = "sdpa"
    """Training attention of SAM / SAM-HQ's vision encoder: sdpa (transformers, a dense relative-position
    bias) or flex (FlexAttention adds it inside the kernel; CUDA only, opt-in until measured faster)."""


@dataclass
class LoraSettings:
    """Where LoRA goes and how big it is."""

    rank: int = 8
    """Rank r of the update B @ A."""
    alpha: float = 8.0
    """The update is scaled by alpha/rank (alpha/sqrt(rank) for rslora)."""
    dropout: float = 0.0
    """Dropout on the LoRA branch's input."""
    variant: Literal["lora", "rslora", "dora"] = "lora"
    """Plain LoRA, rank-stabilised LoRA, or weight-decomposed DoRA."""
    components: list[str] = field(default_factory=lambda: ["vision_encoder"])
    """Components that get LoRA (samlora info MODEL lists them), or [all]."""
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    """Layers inside those components: q_proj k_proj v_proj qkv out_proj mlp attention all-linear, or module
    names as `samlora info --report` lists them (N = any layer index, e.g. layers.N.attention.q_proj)."""
    train_fully: list[str] = field(default_factory=list)
    """Components whose weights are all trained and saved with the adapter (e.g. mask_decoder)."""


@dataclass
class DataConfig:
    """Where the data is and how to read it."""

    root: str = ""
    """Data folder (COCO export or images/ + masks/ folders) or a COCO json file."""
    format: Literal["auto", "coco", "masks"] = "auto"
    """Data format; auto detects it from the folder."""
    train_split: str = "train"
    """Name of the training split."""
    valid_split: str = "valid"
    """Name of the validation split (optional; without it best/ equals last/)."""
    test_split: str = "test"
    """Name of the test split (optional): the split `samlora eval` reads unless --split is given."""
    mask_type: Literal["auto", "binary", "multiclass", "instance"] = "auto"
    """How mask-folder pixel values are read."""
    class_names: dict[int, str] = field(default_factory=dict)
    """Mask pixel value -> class name, for multiclass/instance masks."""
    binary_objects: Literal["components", "whole"] = "components"
    """Binary and multiclass masks: each connected component (of a class) is an object, or the
    whole foreground (of each class) is one."""
    min_object_area: int = 0
    """Objects smaller than this many pixels are dropped (reported)."""
    val_fraction: float = 0.1
    """Seeded validation fraction for mask folders without split lists."""
    test_fraction: float = 0.0
    """Seeded test fraction for mask folders without split lists."""
    split_seed: int = 0
    """Seed of that random split; independent of train.seed, so runs with different training
    seeds (and `samlora eval` over them) share one train/val/test split."""
    include_crowd: bool = False
    """Train on COCO iscrowd objects too (they are always ignore regions in evaluation)."""
    objects_per_image: int = 8
    """At most this many objects of an image per training step (sampled)."""
    cache: bool = False
    """Decode every image once, at start-up (during the data check), into the model's input frame and
    keep it: in memory, or memory-mapped in data.cache_dir when larger than data.cache_memory_mb."""
    cache_dir: str = ""
    """Folder of the on-disk decoded cache (default $SAMLORA_CACHE/decoded); safe to delete."""
    cache_memory_mb: int = 4096
    """Training images estimated to need more memory than this are cached on disk instead."""
    max_pixels: int = 50_000_000
    """Largest image accepted, in pixels (width x height; a guard against decompression bombs and
    out-of-memory); larger images are data errors. 0 accepts any size."""


@dataclass
class PromptConfig:
    """Prompts given to the model during training."""

    modes: list[str] = field(default_factory=lambda: ["box", "points", "box+points"])
    """Prompt kinds drawn per step: box, points, box+points."""
    box_jitter: float = 0.1
    """Box noise per side as a fraction of the box's width/height."""
    box_jitter_max_px: float = 20.0
    """Cap of the box noise in pixels of the original image."""
    max_points: int = 3
    """Positive points per object are drawn from 1..max_points."""
    negative_points: int = 1
    """Negative points per object near its edge in points mode."""
    correction_clicks: int = 0
    """Iterative correction rounds per step (click in the error region, previous mask as prompt)."""
    multimask: bool = True
    """Predict 3 candidate masks for single-point prompts and learn from the best."""
    synonyms: dict[str, list[str]] = field(default_factory=dict)
    """Concept models: category name -> other names used as text prompts."""
    negatives_per_image: int = 2
    """Concept models: text prompts of absent categories per image."""


@dataclass
class AugmentConfig:
    """Training augmentations (never applied in evaluation)."""

    enabled: bool = True
    """Apply the augmentations below in training."""
    hflip: float = 0.5
    """Probability of a horizontal flip."""
    vflip: float = 0.0
    """Probability of a vertical flip."""
    rot90: float = 0.0
    """Probability of a random 90-degree rotation."""
    scale_min: float = 1.0
    """Lower bound of the random scale factor."""
    scale_max: float = 1.0
    """Upper bound of the random scale factor."""
    crop: float = 0.0
    """Probability of a random crop that keeps objects."""
    brightness: float = 0.0
    """Colour jitter: brightness strength."""
    contrast: float = 0.0
    """Colour jitter: contrast strength."""
    saturation: float = 0.0
    """Colour jitter: saturation strength."""
    hue: float = 0.0
    """Colour jitter: hue strength (fraction of the hue circle)."""


@dataclass
class TrainConfig:
    """The optimisation loop."""

    epochs: int = 10
    """Passes over the training split (ignored when max_steps > 0)."""
    max_steps: int = 0
    """Optimiser steps to run; 0 means epochs decide."""
    batch_size: int = 2
    """Images per step per process."""
    lr: float = 1e-4
    """Peak learning rate of AdamW."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    grad_accum: int = 1
    """Micro-batches accumulated per optimiser step."""
    grad_clip: float = 1.0
    """Clip the gradient norm to this value; 0 disables clipping."""
    precision: Literal["no", "fp16", "bf16"] = "no"
    """Mixed precision of the forward pass."""
    seed: int = 0
    """Seed of every random choice (weights init, data order, prompts, augmentation)."""
    num_workers: int = 2
    """DataLoader worker processes (0 decodes in the main process)."""
    warmup_steps: int = 0
    """Linear warm-up steps before the schedule."""
    schedule: Literal["cosine", "constant", "linear"] = "cosine"
    """Learning-rate schedule after warm-up."""
    eval_every: int = 0
    """Validate every N optimiser steps; 0 validates after each epoch."""
    patience: int = 0
    """Stop after this many validations without improvement; 0 never stops early."""
    best_metric: Literal["auto", "dice", "iou", "val_loss", "mAP", "cgF1"] = "auto"
    """Metric that selects best/ (auto: dice for promptable, mAP for concept models: threshold-free and
    always defined, while cgF1 is NaN without negative pairs)."""
    log_every: int = 10
    """Write the training loss to the log every N optimiser steps."""
    trackers: list[str] = field(default_factory=lambda: ["auto"])
    """Experiment trackers: auto (TensorBoard when installed), none, tensorboard, wandb, mlflow."""
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    """auto picks the GPU when there is one; choose a GPU with CUDA_VISIBLE_DEVICES."""
    embedding_cache: Literal["auto", "off", "float32", "bfloat16", "float16"] = "auto"
    """Promptable models whose image encoder is frozen, trained without augmentation: encode each image
    once and reuse its embedding every epoch (auto: stored in bfloat16 on a GPU, float32 on the CPU)."""


@dataclass
class LossConfig:
    """Loss weights (promptable: dice/focal/boundary/iou; concept: the set-prediction terms)."""

    dice: float = 1.0
    """Weight of the Dice loss."""
    focal: float = 20.0
    """Weight of the sigmoid focal loss."""
    boundary: float = 0.0
    """Weight of the boundary-weighted BCE."""
    iou: float = 1.0
    """Weight of the MSE between predicted and actual IoU."""
    focal_alpha: float = 0.25
    """Focal loss alpha (concept models: of the mask focal loss and the focal classification)."""
    focal_gamma: float = 2.0
    """Focal loss gamma (concept models: of the mask focal loss and the focal classification)."""
    boundary_width: int = 3
    """Width in pixels of the band around the true edge that gets extra weight."""
    boundary_weight: float = 5.0
    """Extra weight of pixels in that band."""
    resolution: Literal["low_res", "input", "original"] = "low_res"
    """Where mask losses are computed: the decoder's low-res logits, the model input size, or the original image."""
    set_class: float | None = None
    """Concept models: weight of the classification loss; null: 20 for iabce (SAM 3), 2 for focal (DETR)."""
    set_class_loss: Literal["iabce", "focal"] = "iabce"
    """Concept models: SAM 3's IoU-aware BCE, or DETR-style sigmoid focal classification."""
    set_presence: float = 20.0
    """Concept models: weight of the presence loss (negative prompts teach absence through it)."""
    set_bbox: float = 5.0
    """Concept models: weight of the box L1 loss."""
    set_giou: float = 2.0
    """Concept models: weight of the GIoU loss."""
    set_mask: float = 200.0
    """Concept models: weight of the mask focal loss."""
    set_dice: float = 10.0
    """Concept models: weight of the mask Dice loss."""
    match_class: float = 2.0
    """Concept models: Hungarian matching cost of the class score."""
    match_bbox: float = 5.0
    """Concept models: Hungarian matching cost of the box L1 distance."""
    match_giou: float = 2.0
    """Concept models: Hungarian matching cost of the GIoU."""


@dataclass
class EvalConfig:
    """Evaluation and prediction settings shared by eval, predict and validation."""

    prompt: Literal["box", "center_point", "points", "clicks"] = "box"
    """Prompt given per object in evaluation."""
    num_points: int = 3
    """Points per object in points mode."""
    clicks: int = 5
    """Clicks per object in clicks mode, 1-20 (the first at the object's centre, then one per
    correction; Dice/IoU after each, NoC@85/NoC@90 capped at this number)."""
    feed_mask: bool = True
    """Clicks mode: give the previous low-res mask back as the mask prompt with each click (SAM's
    protocol); false for a model never trained with mask prompts, whose mask input is untrained."""
    batch_size: int = 4
    """Images per forward pass."""
    mask_threshold: float = 0.0
    """Logit threshold that binarises masks."""
    score_threshold: float = 0.5
    """Concept models: score at which an instance counts as predicted, for cgF1 and the prediction
    counts (SAM 3 uses 0.5); mAP ranks every detection, whatever this is."""
    nms_iou: float = 0.5
    """Concept models: NMS IoU threshold (1 disables)."""
    top_k: int = 100
    """Concept models: at most this many instances per prompt."""
    merge: bool = False
    """Concept models: merge overlapping instances of one category (crack-like objects)."""
    boundary_tolerance: float = 2.0
    """Tolerance in pixels of the boundary F1."""
    panels: int = 4
    """Worst and best images drawn as panels."""


@dataclass
class OutputConfig:
    """Where results go."""

    dir: str = "runs/samlora"
    """Output folder of the run."""
    overwrite: bool = False
    """Allow writing into a folder that already holds a run."""


@dataclass
class Config:
    """The whole configuration of a samlora run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    """Base model."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    """LoRA placement."""
    data: DataConfig = field(default_factory=DataConfig)
    """Data set."""
    prompts: PromptConfig = field(default_factory=PromptConfig)
    """Training prompts."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Training augmentations."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Optimisation."""
    loss: LossConfig = field(default_factory=LossConfig)
    """Loss weights."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation."""
    output: OutputConfig = field(default_factory=OutputConfig)
    """Outputs."""
