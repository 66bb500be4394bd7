"""For each strategy: exactly which parameters receive gradients and change after one optimiser step."""

import pytest
import torch

import hf_transfer
from hf_transfer.config import ModelArguments
from hf_transfer.exceptions import ConfigError
from hf_transfer.models import build_image_model

from .conftest import apply_strategy

LABELS = ["a", "b", "c"]


def build(arch: str, strategy: str, **strategy_args):
    model, view = build_image_model(ModelArguments(model_name_or_path=arch, from_scratch=True), LABELS)
    apply_strategy(model, view, strategy, **strategy_args)
    return model, view


def one_step(model):
    """One SGD step on random data; returns (names with a gradient, names whose value changed)."""
    torch.manual_seed(0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.1)
    model.train()
    out = model(pixel_values=torch.randn(4, 3, 32, 32), labels=torch.tensor([0, 1, 2, 0]))
    out.loss.backward()
    # the head starts at zero, so the body receives no gradient on the very first step; take a second one
    optimizer.step()
    optimizer.zero_grad()
    out = model(pixel_values=torch.randn(4, 3, 32, 32), labels=torch.tensor([0, 1, 2, 0]))
    out.loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    return with_grad, changed


def test_registry_lists_the_first_strategies():
    assert {"linear_probe", "freeze", "full"} <= set(hf_transfer.list_strategies())


@pytest.mark.parametrize("arch", ["test_efficientnet", "test_vit"])
def test_linear_probe_trains_only_the_head(arch):
    model, view = build(arch, "linear_probe")
    with_grad, changed = one_step(model)
    assert with_grad == changed == set(view.head)


def test_linear_probe_freezes_batchnorm_statistics():
    model, _ = build("test_efficientnet", "linear_probe")
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns
    stats = [bn.running_mean.clone() for bn in bns]
    model.train()  # the Trainer calls this every step
    assert not any(bn.training for bn in bns)
    one_step(model)
    assert all(torch.equal(bn.running_mean, s) for bn, s in zip(bns, stats))


@pytest.mark.parametrize("arch", ["test_efficientnet", "test_vit"])
def test_freeze_first_blocks(arch):
    model, view = build(arch, "freeze", freeze_blocks=2)
    frozen = set(view.stem) | {n for block in view.blocks[:2] for n in block}
    with_grad, changed = one_step(model)
    everything = {n for n, _ in model.named_parameters()}
    assert not frozen & with_grad and not frozen & changed
    # every later block and the head train (norm layers with zero-grad inputs aside, all of them move)
    assert set(view.head) <= changed
    assert all(set(block) & changed for block in view.blocks[2:])
    assert changed <= everything - frozen


def test_freeze_without_a_count_freezes_half_the_blocks_and_says_how_many():
    from hf_transfer.strategies import StrategyArguments
    from hf_transfer.strategies.base import StrategyContext
    from hf_transfer.strategies.freezing import FreezeFirstBlocks

    model, view = build_image_model(ModelArguments(model_name_or_path="test_vit", from_scratch=True), LABELS)
    args = StrategyArguments(strategy="freeze")
    FreezeFirstBlocks(args).apply(StrategyContext(view=view, task="image-classification"))
    half = view.num_blocks // 2
    assert half >= 1 and args.freeze_blocks == half  # kept as if given: the saved config and the card name it
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not trainable & {n for block in view.blocks[:half] for n in block} and not trainable & set(view.stem)
    assert all(set(block) <= trainable for block in view.blocks[half:])


def test_freeze_keeps_frozen_blocks_batchnorm_statistics_only():
    model, view = build("test_efficientnet", "freeze", freeze_blocks=1)
    model.train()
    stem_bn = model.timm_model.bn1
    last_bn = model.timm_model.bn2
    assert not stem_bn.training and last_bn.training


def test_freeze_blocks_beyond_the_backbone_names_the_limit():
    with pytest.raises(ConfigError, match=r"exceeds the \d+ blocks"):
        build("test_vit", "freeze", freeze_blocks=99)


def test_full_trains_everything():
    model, _ = build("test_vit", "full")
    with_grad, changed = one_step(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters()}
    assert len(changed) / len(trainable) > 0.95  # a handful (e.g. unused cls-token paths) may have zero grad


def test_register_a_custom_strategy():
    @hf_transfer.register_strategy("head_and_norms_for_test")
    class HeadAndNorms(hf_transfer.TransferStrategy):
        def apply(self, context):
            view = context.view
            for name, param in view.model.named_parameters():
                param.requires_grad_(name in view.head or "norm" in name)

    assert "head_and_norms_for_test" in hf_transfer.list_strategies()
    model, view = build("test_vit", "head_and_norms_for_test")
    _, changed = one_step(model)
    assert set(view.head) <= changed and all(n in view.head or "norm" in n for n in changed)
