"""``model.attention: flex``: FlexAttention with SAM's decomposed relative positions equals SDPA."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from samlora.data.synthetic import write_mask_dataset
from samlora.errors import ConfigError
from samlora.models.attention import use_flex_attention
from samlora.models.loading import load_model
from samlora.training.trainer import train

from ..training.test_trainer import cfg_for


def _pixels(loaded, seed: int = 0) -> torch.Tensor:
    size = loaded.preprocessing.image_size
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", ["sam", "sam_hq"])
def test_flex_attention_gives_the_sdpa_encoder_output(tiny_dirs: dict[str, Path], family: str) -> None:
    loaded = load_model(str(tiny_dirs[family]))
    encoder = loaded.model.vision_encoder
    with torch.no_grad():  # non-zero relative positions, so their term matters
        for layer in encoder.layers:
            layer.attn.rel_pos_h.normal_(std=0.5)
            layer.attn.rel_pos_w.normal_(std=0.5)
    flex = copy.deepcopy(encoder)
    assert use_flex_attention(flex) == len(encoder.layers)  # windowed and global layers alike
    pixels = _pixels(loaded)
    with torch.no_grad():
        expected, got = encoder(pixels)[0], flex(pixels)[0]
        without_rel = copy.deepcopy(encoder)
        for layer in without_rel.layers:
            layer.attn.rel_pos_h.zero_()
            layer.attn.rel_pos_w.zero_()
        assert not torch.allclose(without_rel(pixels)[0], expected, atol=1e-3)  # the term is not a no-op
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_families_without_relative_positions_are_left_alone(tiny_dirs: dict[str, Path]) -> None:
    assert use_flex_attention(load_model(str(tiny_dirs["sam2"])).model) == 0


def test_training_with_flex_off_cuda_is_a_config_error_before_anything_is_written(
    tiny_dirs: dict[str, Path], tmp_path: Path
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    data = write_mask_dataset(tmp_path / "data", n_train=2, n_valid=0, seed=0)
    cfg = cfg_for(tiny_dirs["sam"], data, tmp_path / "run", model={"attention": "flex"})
    with pytest.raises(
        ConfigError, match="model.attention flex trains on CUDA only.*use model.attention sdpa"
    ):
        train(cfg)
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FlexAttention's backward runs on CUDA only")
def test_flex_attention_gradients_equal_sdpa_on_cuda(tiny_dirs: dict[str, Path]) -> None:
    loaded = load_model(str(tiny_dirs["sam"]), device="cuda")
    encoder = loaded.model.vision_encoder.float()
    flex = copy.deepcopy(encoder)
    use_flex_attention(flex)
    pixels = _pixels(loaded).cuda()
    for module in (encoder, flex):
        module(pixels)[0].square().sum().backward()
    for (name, a), (_, b) in zip(encoder.named_parameters(), flex.named_parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-4, msg=name)
