"""LoRA settings -> an exact set of layers -> a PEFT model.

The plan is computed from the model itself: every linear layer is assigned to a
component (by its top-level module) and a kind (q/k/v/qkv/out/mlp/other), and
the user's short names select kinds inside the chosen components only. The
selection becomes one regex anchored at the component (``^(?:vision_encoder)\\..*``),
so SAM 3's vision ``q_proj`` never catches the text encoder's.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import peft
from torch import nn

from samlora.config import LoraSettings
from samlora.errors import LoraTargetError
from samlora.models.families import ALL_LINEAR, TARGET_ALIASES, FamilySpec, linear_kind


@dataclass
class LoraPlan:
    """The exact layers LoRA will wrap and the components trained fully.

    Attributes:
        targets: full module names that get a LoRA update.
        target_regex: one anchored regex matching exactly ``targets``.
        modules_to_save: top-level modules trained fully (PEFT ``modules_to_save``).
        notes: remarks for the user (e.g. fused q/k/v).
    """

    targets: list[str]
    target_regex: str
    modules_to_save: list[str]
    notes: list[str] = field(default_factory=list)


def expand_all(settings: LoraSettings, spec: FamilySpec) -> LoraSettings:
    """Replace the component name ``all`` by every component of the family not trained fully."""
    if "all" not in settings.components:
        return settings
    fully = set(settings.train_fully)
    components = [c for c in spec.components if c not in fully]
    return dataclasses.replace(settings, components=components)


def linear_layers(model: nn.Module, spec: FamilySpec) -> dict[str, tuple[str, str]]:
    """Every ``nn.Linear`` of the base model: full name -> (component, kind)."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            component = spec.component_of(name)
            if component is not None:
                relative = name.split(".", 1)[1] if "." in name else name
                out[name] = (component, linear_kind(relative))
    return out


def plan_lora(model: nn.Module, spec: FamilySpec, settings: LoraSettings) -> LoraPlan:
    """Resolve ``settings`` against ``model``; raise :class:`LoraTargetError` with what is available."""
    settings = expand_all(settings, spec)
    unknown = [c for c in [*settings.components, *settings.train_fully] if c not in spec.components]
    if unknown:
        raise LoraTargetError(
            f"component(s) {unknown} do not exist in family '{spec.name}'; its components are "
            f"{', '.join(spec.components)}"
        )
    layers = linear_layers(model, spec)
    in_components = {n: kind for n, (comp, kind) in layers.items() if comp in settings.components}
    notes: list[str] = []
    selected: set[str] = set()
    for token in settings.target_modules:
        matched = _select(token, in_components, spec, notes)
        if not matched and settings.components:
            raise LoraTargetError(_not_found_message(token, settings.components, in_components))
        selected |= matched
    targets = sorted(selected)
    to_save = [top for c in settings.train_fully for top in spec.components[c] if _has_module(model, top)]
    return LoraPlan(
        targets=targets, target_regex=targets_regex(targets), modules_to_save=to_save, notes=notes
    )


def _select(token: str, layers: dict[str, str], spec: FamilySpec, notes: list[str]) -> set[str]:
    if token == ALL_LINEAR:
        return set(layers)
    if token in TARGET_ALIASES:
        kinds = set(TARGET_ALIASES[token])
        if spec.fused_qkv and kinds & {"q_proj", "k_proj", "v_proj"}:
            kinds.add("qkv")
            fused = [n for n, k in layers.items() if k == "qkv"]
            if fused:
                note = f"'{token}': q, k and v are one fused linear (attn.qkv) in {spec.name}'s vision encoder; LoRA adapts it"
                if note not in notes:
                    notes.append(note)
        return {n for n, k in layers.items() if k in kinds}
    if "N" in token.split("."):  # a name as `samlora info` shows it: N stands for any layer index
        pattern = re.compile(
            r"(?:.*\.)?" + r"\.".join(r"\d+" if p == "N" else re.escape(p) for p in token.split("."))
        )
        return {n for n in layers if pattern.fullmatch(n)}
    return {n for n in layers if n == token or n.endswith("." + token)}


def _not_found_message(token: str, components: list[str], layers: dict[str, str]) -> str:
    if not layers:
        return (
            f"{components} have no linear layers LoRA can adapt; train them fully with "
            f"lora.train_fully: {components} instead"
        )
    kinds = sorted({k for k in layers.values() if k != "other"})
    shorts = sorted({re.sub(r"\.\d+\.", ".N.", n.split(".", 1)[-1]) for n in layers})
    shown = ", ".join(shorts[:40]) + (" ..." if len(shorts) > 40 else "")
    return (
        f"target module '{token}' matches no linear layer in {components}. Available short names: "
        f"{', '.join(kinds + ['attention', 'all-linear'])}; module names: {shown}"
    )


def _has_module(model: nn.Module, name: str) -> bool:
    try:
        model.get_submodule(name)
    except AttributeError:
        return False
    return True


@contextmanager
def peft_wrapping() -> Iterator[None]:
    """Wrap a model in PEFT without its deprecation noise: PEFT reads transformers' deprecated
    ``is_gradient_checkpointing`` (a FutureWarning users cannot act on), so that one warning is
    silenced while wrapping, and nothing else."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def targets_regex(targets: list[str]) -> str:
    """A compact regex for ``targets``: layer indices become ``\\d+`` (callers check it stays exact)."""
    if not targets:
        return r"^$"
    patterns = sorted(
        {r"\.".join(r"\d+" if p.isdigit() else re.escape(p) for p in t.split(".")) for t in targets}
    )
    return "^(?:" + "|".join(patterns) + ")$"


def build_peft_config(
    plan: LoraPlan, settings: LoraSettings, base_name: str | None = None
) -> peft.LoraConfig:
    """The ``peft.LoraConfig`` of a plan (B = 0 at init, so the model starts equal to its base)."""
    return peft.LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=plan.target_regex if plan.targets else [],
        modules_to_save=plan.modules_to_save or None,
        use_rslora=settings.variant == "rslora",
        use_dora=settings.variant == "dora",
        init_lora_weights=True,
        base_model_name_or_path=base_name,
    )


def apply_lora(
    model: nn.Module,
    spec: FamilySpec,
    settings: LoraSettings,
    adapter_name: str = "default",
    base_name: str | None = None,
) -> tuple[peft.PeftModel, LoraPlan]:
    """Wrap ``model`` with a new trainable adapter; only its parameters require grad."""
    plan = plan_lora(model, spec, settings)
    exact = set(plan.targets)
    matched = {
        n for n, m in model.named_modules() if isinstance(m, nn.Linear) and re.fullmatch(plan.target_regex, n)
    }
    if matched != exact:  # the compact regex over-generalised: fall back to an explicit alternation
        plan.target_regex = "^(?:" + "|".join(re.escape(t) for t in plan.targets) + ")$"
    config = build_peft_config(plan, settings)
    if isinstance(model, peft.PeftModel):
        model.add_adapter(adapter_name, config)
        model.set_adapter(adapter_name)
        peft_model = model
    else:
        with peft_wrapping():
            peft_model = peft.get_peft_model(model, config, adapter_name=adapter_name)
    if base_name is not None:  # after wrapping: PEFT sets it to the loaded folder (a preset's install path)
        peft_model.peft_config[adapter_name].base_model_name_or_path = base_name
    return peft_model, plan
