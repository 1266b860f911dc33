"""SAM 3's set-prediction loss for concept (text-prompt) segmentation.

One batch element is one (image, text prompt) pair: ``Sam3Model`` gives ``pred_logits`` N x Q,
``presence_logits`` N x 1, ``pred_boxes`` N x Q x 4 (normalised XYXY) and ``pred_masks``
N x Q x h x w logits. A target is ``{"boxes": K x 4 normalised XYXY, "masks": K x H x W bool}``;
``K == 0`` is a negative prompt (the concept is absent from the image).

What SAM 3 does, read from ``facebookresearch/sam3`` (``sam3/train/loss/loss_fns.py``,
``sam3/train/loss/sam3_loss.py``, ``sam3/train/matcher.py``) and followed here:

* Hungarian one-to-one matching (:mod:`samlora.tasks.concept.matching`) of queries to objects, per pair.
* Classification, ``IABCEMdetr`` (IoU-aware BCE): a matched query's soft target is
  ``t = clamp(p^a * IoU^(1-a), 0.01)`` (``p`` its probability, IoU of its box with its object,
  both detached, ``a = 0.25``), weighted by ``pos_weight = 10``; every unmatched query is pushed to
  0 with ``BCE * p^gamma`` (``gamma = 2``). The sum is divided by ``N * max(Q, pad_n_queries)``
  (``pad_n_queries = 200``, SAM 3's query count, so a model with fewer queries keeps the scale).
  ``class_loss="focal"`` instead gives the DETR-variant sigmoid focal loss (matched = 1, alpha 0.25,
  gamma 2) summed over queries and divided by the number of objects, as Deformable-DETR does.
* Negative prompts: with a presence head (``use_presence=True``) SAM 3 multiplies the per-query
  classification loss by "this prompt has an object", so **a negative prompt contributes only the
  presence loss** (its queries are not pushed down: the presence score does the rejecting).
  Without a presence head (``use_presence=False``) negatives' queries all get target 0.
* Presence: sigmoid focal loss with alpha 0.5 and gamma 0 (that is, ``0.5 * BCE``) on
  ``presence_logits`` against 1 (prompt has an object) / 0 (negative prompt), averaged over pairs.
* Boxes on matched queries: L1 on CXCYWH coordinates and ``1 - GIoU`` on XYXY, each summed and
  divided by the number of objects.
* Masks on matched queries: sigmoid focal (alpha 0.25, gamma 2, mean over pixels) and Dice
  ``1 - (2 sum(pt) + 1) / (sum p + sum t + 1)``, each summed over masks and divided by the number of
  objects. SAM 3 upsamples predictions to the ground truth's size (``mask_loss_resolution="target"``);
  the default ``"prediction"`` area-resizes the ground truth to the prediction's size instead (cheaper;
  soft targets keep thin structures).
* Normalisation by the number of ground-truth objects in the batch, averaged over processes when
  ``torch.distributed`` is initialised, at least 1 (DETR's ``num_boxes``).

Default weights (SAM 3 fine-tuning recipe, ``sam3/train/configs/roboflow_v100/
roboflow_v100_full_ft_100_images.yaml``): ``loss_ce`` 20.0, ``presence_loss`` 20.0, ``pos_weight`` 10.0,
``alpha`` 0.25, ``gamma`` 2, ``pad_n_queries`` 200 (``IABCEMdetr``); ``loss_bbox`` 5.0, ``loss_giou`` 2.0
(``Boxes``); ``loss_mask`` 200.0, ``loss_dice`` 10.0, ``focal_alpha`` 0.25, ``focal_gamma`` 2.0 (``Masks``,
the segmentation variant given in the same file); matcher ``cost_class`` 2.0, ``cost_bbox`` 5.0,
``cost_giou`` 2.0; presence ``presence_alpha`` 0.5, ``presence_gamma`` 0.0 (``IABCEMdetr`` defaults).
The focal classification weight defaults to 2.0 (Deformable-DETR ``main.py --cls_loss_coef``).
Left out because ``Sam3Model`` does not expose what they need: one-to-many (``o2m_weight`` 2.0) and
auxiliary-layer losses. SAM 3 multiplies the total by ``sqrt(N)`` (``scale_by_find_batch_size``);
this is opt-in (``scale_by_sqrt_batch``) because it changes with gradient accumulation and makes
loss curves incomparable across batch sizes, while AdamW is invariant to a constant loss scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from .boxes import box_xyxy_to_cxcywh, paired_box_iou, paired_generalized_box_iou
from .matching import match_batch, output_field, resize_masks

__all__ = ["ConceptSetLoss", "sigmoid_focal_loss", "dice_loss"]

TERMS = ("loss_class", "loss_presence", "loss_bbox", "loss_giou", "loss_mask", "loss_dice")


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Element-wise sigmoid focal loss (Lin et al. 2017); ``targets`` may be soft, any shape.

    ``alpha_t * BCE(logits, targets) * (1 - p_t)^gamma`` with ``p_t = p t + (1-p)(1-t)`` and
    ``alpha_t = alpha t + (1-alpha)(1-t)``; ``alpha < 0`` disables the alpha weighting.
    """
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma if gamma else ce
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def dice_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Per-mask Dice loss: ``M x P`` logits and ``M x P`` targets in [0, 1] -> ``M``."""
    prob = logits.sigmoid()
    numerator = 2 * (prob * targets).sum(-1)
    return 1 - (numerator + 1) / (prob.sum(-1) + targets.sum(-1) + 1)


def _graph_zero(*tensors: Tensor | None) -> Tensor:
    """A zero connected to the graph of the given tensors (so DDP sees every head used each step).

    The first tensor must not be None; later ``None`` entries are skipped.
    """
    zero = tensors[0].sum() * 0.0
    for t in tensors[1:]:
        if t is not None:
            zero = zero + t.sum() * 0.0
    return zero


class ConceptSetLoss(nn.Module):
    """SAM 3's Hungarian set loss for (image, text prompt) pairs; see the module docstring.

    Call with ``outputs`` (``Sam3Model`` output or dict: ``pred_logits`` N x Q, ``presence_logits``
    N x 1, ``pred_boxes`` N x Q x 4 normalised XYXY, optional ``pred_masks`` N x Q x h x w logits) and
    ``targets`` (N dicts: ``"boxes"`` K x 4 normalised XYXY, optional ``"masks"`` K x H x W bool; K may
    be 0). Returns ``(total, terms)``: ``total`` a float32 scalar (the weighted sum, with grad),
    ``terms`` detached float32 scalars for logging: the unweighted ``loss_class``, ``loss_presence``,
    ``loss_bbox``, ``loss_giou``, ``loss_mask``, ``loss_dice``, plus ``loss_total``, ``num_boxes``,
    ``presence_accuracy`` and ``presence_loss_negatives`` (the unweighted presence loss of the
    negative prompts alone: how well absence is learnt; NaN without a presence head or negatives). Everything is
    computed in float32 with autocast disabled, whatever the outputs' dtype.
    """

    def __init__(
        self,
        *,
        weight_class: float | None = None,
        weight_presence: float = 20.0,
        weight_bbox: float = 5.0,
        weight_giou: float = 2.0,
        weight_mask: float = 200.0,
        weight_dice: float = 10.0,
        class_loss: Literal["iabce", "focal"] = "iabce",
        pos_weight: float = 10.0,
        iabce_alpha: float = 0.25,
        iabce_gamma: float = 2.0,
        pad_n_queries: int | None = 200,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        presence_alpha: float = 0.5,
        presence_gamma: float = 0.0,
        mask_focal_alpha: float = 0.25,
        mask_focal_gamma: float = 2.0,
        mask_loss_resolution: Literal["prediction", "target"] = "prediction",
        cost_class: float = 2.0,
        cost_bbox: float = 5.0,
        cost_giou: float = 2.0,
        cost_mask: float = 0.0,
        cost_dice: float = 0.0,
        use_presence: bool = True,
        scale_by_sqrt_batch: bool = False,
        sync_num_boxes: bool = True,
    ) -> None:
        super().__init__()
        if class_loss not in ("iabce", "focal"):
            raise ValueError(f"class_loss must be 'iabce' (SAM 3) or 'focal', not {class_loss!r}")
        if mask_loss_resolution not in ("prediction", "target"):
            raise ValueError(
                f"mask_loss_resolution must be 'prediction' or 'target', not {mask_loss_resolution!r}"
            )
        default_class = 20.0 if class_loss == "iabce" else 2.0
        self.weights = {
            "loss_class": default_class if weight_class is None else weight_class,
            "loss_presence": weight_presence if use_presence else 0.0,
            "loss_bbox": weight_bbox,
            "loss_giou": weight_giou,
            "loss_mask": weight_mask,
            "loss_dice": weight_dice,
        }
        self.class_loss = class_loss
        self.pos_weight, self.iabce_alpha, self.iabce_gamma = pos_weight, iabce_alpha, iabce_gamma
        self.pad_n_queries = pad_n_queries
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.presence_alpha, self.presence_gamma = presence_alpha, presence_gamma
        self.mask_focal_alpha, self.mask_focal_gamma = mask_focal_alpha, mask_focal_gamma
        self.mask_loss_resolution = mask_loss_resolution
        self.costs = {
            "cost_class": cost_class,
            "cost_bbox": cost_bbox,
            "cost_giou": cost_giou,
            "cost_mask": cost_mask,
            "cost_dice": cost_dice,
            "focal_alpha": focal_alpha,
            "focal_gamma": focal_gamma,
        }
        self.use_presence = use_presence
        self.scale_by_sqrt_batch = scale_by_sqrt_batch
        self.sync_num_boxes = sync_num_boxes

    def forward(
        self,
        outputs: Mapping[str, Any] | Any,
        targets: Sequence[Mapping[str, Tensor]],
        matches: Sequence[tuple[Tensor, Tensor]] | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Compute the loss; ``matches`` (from :func:`samlora.tasks.concept.matching.match_batch`) is optional."""
        logits = output_field(outputs, "pred_logits")
        device = logits.device if logits is not None else torch.device("cpu")
        with torch.autocast(device_type=device.type, enabled=False):
            return self._forward(outputs, targets, matches)

    def _forward(
        self,
        outputs: Mapping[str, Any] | Any,
        targets: Sequence[Mapping[str, Tensor]],
        matches: Sequence[tuple[Tensor, Tensor]] | None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        logits, boxes = output_field(outputs, "pred_logits"), output_field(outputs, "pred_boxes")
        if logits is None or boxes is None:
            raise ValueError("outputs need 'pred_logits' (N x Q) and 'pred_boxes' (N x Q x 4)")
        n_pairs, n_queries = logits.shape[0], logits.shape[1]
        logits = logits.float().reshape(n_pairs, n_queries)
        boxes = boxes.float()
        presence = output_field(outputs, "presence_logits")
        if self.use_presence and presence is None:
            raise ValueError(
                "use_presence=True but outputs have no 'presence_logits'; "
                "pass use_presence=False for a model without a presence head"
            )
        presence = presence.float().reshape(n_pairs) if presence is not None else None
        masks = output_field(outputs, "pred_masks")
        masks = masks.float() if masks is not None else None
        if n_pairs == 0:
            raise ValueError("the batch holds no (image, prompt) pairs")
        if len(targets) != n_pairs:
            raise ValueError(f"got {len(targets)} targets for {n_pairs} (image, prompt) pairs")
        if matches is None:
            detached = {"pred_logits": logits.detach(), "pred_boxes": boxes.detach()}
            if masks is not None:
                detached["pred_masks"] = masks.detach()
            matches = match_batch(detached, targets, **self.costs)

        counts = [int(t["boxes"].shape[0]) for t in targets]
        has_object = torch.tensor([k > 0 for k in counts], dtype=torch.float32, device=logits.device)
        num_boxes = self._num_boxes(sum(counts), logits)
        batch_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(matches)]).to(
            logits.device
        )
        src_idx = torch.cat([src for src, _ in matches]).to(logits.device)
        gt_boxes = torch.cat(
            [t["boxes"].to(boxes)[gt] for t, (_, gt) in zip(targets, matches)] + [boxes.new_zeros((0, 4))]
        )
        src_boxes = boxes[batch_idx, src_idx]

        terms: dict[str, Tensor] = {}
        terms["loss_class"] = self._class_term(
            logits, batch_idx, src_idx, src_boxes, gt_boxes, has_object, num_boxes
        )
        if presence is not None and self.use_presence:
            pres = sigmoid_focal_loss(presence, has_object, self.presence_alpha, self.presence_gamma)
            terms["loss_presence"] = pres.sum() / n_pairs
            presence_accuracy = ((presence > 0).float() == has_object).float().mean()
            negatives = has_object == 0
            presence_negatives = pres[negatives].mean() if negatives.any() else torch.full((), float("nan"))
        else:
            terms["loss_presence"] = _graph_zero(logits, presence)
            presence_accuracy = presence_negatives = torch.full((), float("nan"))
        if src_idx.numel() > 0:
            l1 = F.l1_loss(box_xyxy_to_cxcywh(src_boxes), box_xyxy_to_cxcywh(gt_boxes), reduction="none")
            terms["loss_bbox"] = l1.sum() / num_boxes
            terms["loss_giou"] = (1 - paired_generalized_box_iou(src_boxes, gt_boxes)).sum() / num_boxes
        else:
            terms["loss_bbox"] = terms["loss_giou"] = _graph_zero(boxes)
        terms["loss_mask"], terms["loss_dice"] = self._mask_terms(masks, targets, matches, num_boxes, logits)

        total = sum(self.weights[k] * terms[k] for k in TERMS)
        if self.scale_by_sqrt_batch:
            total = total * math.sqrt(n_pairs)
        logged = {k: v.detach() for k, v in terms.items()}
        logged["loss_total"] = total.detach()
        logged["num_boxes"] = num_boxes.detach()
        logged["presence_accuracy"] = presence_accuracy.detach()
        logged["presence_loss_negatives"] = presence_negatives.detach()
        return total, logged

    def _num_boxes(self, count: int, like: Tensor) -> Tensor:
        num = torch.tensor(float(count), dtype=torch.float32, device=like.device)
        if self.sync_num_boxes and dist.is_available() and dist.is_initialized():
            dist.all_reduce(num)
            num = num / dist.get_world_size()
        return num.clamp(min=1.0)

    def _class_term(
        self,
        logits: Tensor,
        batch_idx: Tensor,
        src_idx: Tensor,
        src_boxes: Tensor,
        gt_boxes: Tensor,
        has_object: Tensor,
        num_boxes: Tensor,
    ) -> Tensor:
        """Classification loss over all queries; N x Q logits -> scalar."""
        target = torch.zeros_like(logits)
        target[batch_idx, src_idx] = 1.0
        keep = has_object[:, None] if self.use_presence else torch.ones_like(has_object)[:, None]
        if self.class_loss == "focal":
            loss = sigmoid_focal_loss(logits, target, self.focal_alpha, self.focal_gamma) * keep
            return loss.sum() / num_boxes
        prob = logits.sigmoid()
        with torch.no_grad():
            soft = target.clone()
            iou = paired_box_iou(src_boxes, gt_boxes)
            soft[batch_idx, src_idx] = (
                prob[batch_idx, src_idx] ** self.iabce_alpha * iou ** (1 - self.iabce_alpha)
            ).clamp(min=0.01)
        positive = (
            F.binary_cross_entropy_with_logits(logits, soft, reduction="none") * target * self.pos_weight
        )
        negative = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * (1 - target)
        loss = (positive + negative * prob**self.iabce_gamma) * keep
        n_pairs, n_queries = logits.shape
        return loss.sum() / (n_pairs * max(n_queries, self.pad_n_queries or 0))

    def _mask_terms(
        self,
        masks: Tensor | None,
        targets: Sequence[Mapping[str, Tensor]],
        matches: Sequence[tuple[Tensor, Tensor]],
        num_boxes: Tensor,
        logits: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Focal and Dice mask losses on matched queries (0 when there are no masks)."""
        positives = [i for i, t in enumerate(targets) if t["boxes"].shape[0] > 0]
        with_masks = [i for i in positives if targets[i].get("masks") is not None]
        if masks is None or not with_masks:
            return _graph_zero(logits, masks), _graph_zero(logits, masks)
        if len(with_masks) != len(positives):
            missing = sorted(set(positives) - set(with_masks))
            raise ValueError(f"targets {missing[:10]} have boxes but no 'masks' while others have masks")
        focal_sum, dice_sum = _graph_zero(masks), _graph_zero(masks)
        for i in with_masks:
            src, gt = matches[i]
            gt_masks = targets[i]["masks"]
            if gt_masks.shape[0] != targets[i]["boxes"].shape[0]:
                raise ValueError(
                    f"target {i}: {gt_masks.shape[0]} masks for {targets[i]['boxes'].shape[0]} boxes"
                )
            if src.numel() == 0:
                continue
            pred = masks[i, src.to(masks.device)]  # M x h x w
            gt_masks = gt_masks.to(masks.device)[gt.to(masks.device)]
            if self.mask_loss_resolution == "prediction":
                tgt = resize_masks(gt_masks, tuple(pred.shape[-2:]))
            else:
                tgt = gt_masks.float()
                if tuple(pred.shape[-2:]) != tuple(tgt.shape[-2:]):
                    pred = F.interpolate(
                        pred[:, None], size=tgt.shape[-2:], mode="bilinear", align_corners=False
                    )[:, 0]
            pred, tgt = pred.flatten(1), tgt.flatten(1)
            focal = sigmoid_focal_loss(pred, tgt, self.mask_focal_alpha, self.mask_focal_gamma)
            focal_sum = focal_sum + focal.mean(-1).sum()
            dice_sum = dice_sum + dice_loss(pred, tgt).sum()
        return focal_sum / num_boxes, dice_sum / num_boxes
