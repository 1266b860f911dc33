"""Step time and peak memory of SAM 3 concept fine-tuning (random weights, no download).

``--size full`` builds transformers' default Sam3Config (the SAM 3 architecture,
1008 px; needs a GPU to be practical); ``--size reduced`` (default on CPU) keeps
the architecture with fewer/narrower layers at 336 px. LoRA rank 16 on the
vision encoder and mask decoder (attention + MLP), 2 images x (1 positive +
2 negative) text prompts per step, the full set loss. Peak memory is CUDA's
``max_memory_allocated`` on a GPU and the growth of the process's peak RSS on a
CPU. Compare ``--precision bf16`` and ``--checkpointing``.

    .venv/bin/python benchmarks/concept_step.py [--size reduced|full] [--precision no|bf16] [--checkpointing]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch
import transformers

from samlora.config import config_from_dict
from samlora.data.synthetic import write_coco_dataset
from samlora.lora.counts import parameter_report
from samlora.lora.plan import apply_lora
from samlora.models.loading import enable_activation_checkpointing, load_model
from samlora.models.tiny import tiny_tokenizer
from samlora.tasks.concept.task import ConceptTask

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()


def reduced_config() -> transformers.Sam3Config:
    vocab = len(tiny_tokenizer().get_vocab())
    vit = dict(model_type="sam3_vit_model", hidden_size=384, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=6,
               image_size=336, patch_size=14, window_size=8, global_attn_indexes=[3, 7], pretrain_image_size=336)  # fmt: skip
    return transformers.Sam3Config(
        vision_config=dict(
            model_type="sam3_vision_model",
            backbone_config=vit,
            backbone_feature_sizes=[[96, 96], [48, 48], [24, 24]],
        ),
        text_config=dict(
            model_type="clip_text_model",
            vocab_size=vocab,
            hidden_size=256,
            intermediate_size=1024,
            projection_dim=256,
            num_hidden_layers=4,
            num_attention_heads=4,
            max_position_embeddings=32,
            bos_token_id=vocab - 2,
            eos_token_id=vocab - 1,
            pad_token_id=vocab - 1,
        ),  # fmt: skip
    )


def full_config() -> transformers.Sam3Config:
    config = transformers.Sam3Config()
    vocab = len(tiny_tokenizer().get_vocab())
    config.text_config.vocab_size = vocab
    config.text_config.bos_token_id, config.text_config.eos_token_id = vocab - 2, vocab - 1
    return config


def peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=["reduced", "full"], default=None)
    parser.add_argument("--precision", choices=["no", "bf16"], default="no")
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    size = args.size or ("full" if device.type == "cuda" else "reduced")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "sam3"
        torch.manual_seed(0)
        transformers.Sam3Model(full_config() if size == "full" else reduced_config()).save_pretrained(folder)
        tiny_tokenizer().save_pretrained(folder)
        image_size = 1008 if size == "full" else 336
        data = write_coco_dataset(Path(tmp) / "coco", n_train=4, n_valid=0, seed=0, size=image_size)
        cfg = config_from_dict(
            {
                "model": {"name": str(folder)},
                "lora": {"rank": 16, "alpha": 32, "components": ["vision_encoder", "mask_decoder"], "target_modules": ["attention", "mlp"]},
                "data": {"root": str(data)},
                "prompts": {"negatives_per_image": 2},
                "train": {"num_workers": 0},
            }
        )  # fmt: skip
        loaded = load_model(str(folder), device=device)
        if args.checkpointing:
            enable_activation_checkpointing(loaded.model)
        model, _ = apply_lora(loaded.model, loaded.spec, cfg.lora)
        counts = parameter_report(model, loaded.spec)
        task = ConceptTask(loaded, cfg)
        train_set, _ = task.datasets()
        module = task.module(model).to(device).train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        samples = [train_set[0], train_set[1]]
        dtype = torch.bfloat16 if args.precision == "bf16" else None
        before = peak_bytes(device)
        times = []
        for step in range(args.steps + 1):
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss, _ = task.train_loss(module, samples, torch.Generator().manual_seed(step))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        peak = peak_bytes(device) - (0 if device.type == "cuda" else before)
        params = sum(c.base for c in counts.values())
        trainable = sum(c.trainable for c in counts.values())
        print(f"SAM 3 {size} ({params / 1e6:.1f}M parameters, {trainable / 1e6:.2f}M trainable), {image_size} px, device {device}, "
              f"precision {args.precision}, checkpointing {args.checkpointing}")  # fmt: skip
        print(f"step time {sum(times[1:]) / args.steps:.2f} s, peak memory {'allocated' if device.type == 'cuda' else 'RSS growth'} "
              f"{peak / 2**30:.2f} GiB")  # fmt: skip


if __name__ == "__main__":
    main()
