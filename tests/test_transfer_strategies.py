"""The full strategy registry on tiny models: what trains at each stage, learning rates per group, each regulariser
against a hand computation, adapter save → load → merge equality, composition rules."""

import copy
import json

import pytest
import torch
from torch import nn

import hf_transfer as ht
from hf_transfer.config import ModelArguments
from hf_transfer.exceptions import ConfigError
from hf_transfer.models import build_image_model
from hf_transfer.strategies import ComposedStrategy, OptimizerSettings, StrategyArguments
from hf_transfer.strategies.base import SourceModel
from hf_transfer.strategies.wise_ft import interpolate

from .conftest import apply_strategy, write_imagefolder, write_text_csv

ALL_TWELVE = {
    "linear_probe", "freeze", "full", "gradual_unfreeze", "llrd", "lora", "ia3", "bitfit", "l2sp", "lwf", "lp_ft",
    "wise_ft",
}  # fmt: skip


def tiny(arch: str = "test_vit", labels=("a", "b", "c")):
    return build_image_model(ModelArguments(model_name_or_path=arch, from_scratch=True), list(labels))


def batch(n: int = 4, size: int = 32):
    torch.manual_seed(0)
    return {"pixel_values": torch.randn(n, 3, size, size), "labels": torch.arange(n) % 3}


def adam_step(model, optimizer, inputs=None):
    model.train()
    optimizer.zero_grad()
    model(**(inputs or batch())).loss.backward()
    optimizer.step()


def changed(before: dict, model) -> set[str]:
    return {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}


def snapshot(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_all_twelve_strategies_are_registered():
    assert ALL_TWELVE <= set(ht.list_strategies())


@pytest.mark.parametrize(
    ("strategy", "kwargs", "message"),
    [
        ("lora+l2sp", {}, "does not compose"),
        ("linear_probe+freeze", {"freeze_blocks": 1}, "both set the trainable set"),
        ("llrd+linear_probe", {}, "does not compose"),
        ("full", {"lora_r": 4}, "--lora_r does not apply to --strategy full"),
        ("full+full", {}, "distinct"),
        ("gradual_unfreeze", {"unfreeze_every": 1, "unfreeze_milestones": "1,2"}, "not both"),
        ("wise_ft", {"wise_alphas": "0,2"}, r"\[0, 1\]"),
    ],
)
def test_composition_rules(strategy, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ComposedStrategy(StrategyArguments(strategy=strategy, **kwargs))


def test_composable_strategies_are_allowed():
    for name in ("freeze+llrd", "full+l2sp+wise_ft", "lp_ft+llrd", "gradual_unfreeze+llrd", "l2sp"):
        args = {"freeze_blocks": 1} if name.startswith("freeze") else {}
        assert ComposedStrategy(StrategyArguments(strategy=name, **args)).name == name


def test_gradual_unfreezing_stages_fresh_state_and_intended_lr():
    model, view = tiny()
    strategy, context, model = apply_strategy(model, view, "gradual_unfreeze", unfreeze_every=1)
    schedule = strategy.callbacks(context)[0]
    # the optimizer is built while every eventually-trainable parameter requires grad, as in the Trainer
    lr = 1e-3
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    params = dict(model.named_parameters())

    schedule.set_stage(schedule.stage_at(0.0))
    before = snapshot(model)
    adam_step(model, optimizer)
    assert changed(before, model) == set(view.head)
    assert all(params[n] not in optimizer.state for n in view.body())  # frozen: no gradient, no optimizer state

    schedule.set_stage(schedule.stage_at(1.0))  # one epoch in: the top block joins
    top = set(view.blocks[-1])
    assert {n for n, p in params.items() if p.requires_grad} == set(view.head) | top
    before = snapshot(model)
    adam_step(model, optimizer)
    assert changed(before, model) == set(view.head) | top
    for name in top:  # Adam's first step with fresh state moves each weight by ~lr (m/sqrt(v) = ±1, up to eps)
        step = (params[name].detach() - before[name]).abs()
        moved = step[step > 0]
        assert moved.max() <= lr * 1.001, name
        assert moved.median() == pytest.approx(lr, rel=0.05), name  # (attention key biases get ~no gradient)
    assert optimizer.state[params[next(iter(view.head))]]["step"] == 2
    assert all(optimizer.state[params[n]]["step"] == 1 for n in top)

    schedule.set_stage(schedule.stage_at(float(view.num_blocks + 1)))  # the end: everything, stem included
    assert all(p.requires_grad for p in model.parameters())


def test_gradual_unfreezing_milestones_and_batchnorm_policy():
    model, view = tiny("test_efficientnet")
    strategy, context, model = apply_strategy(
        model, view, "gradual_unfreeze", unfreeze_milestones="2,3", train_bn=False
    )
    schedule = strategy.callbacks(context)[0]
    assert [schedule.stage_at(e) for e in (0, 1.9, 2.0, 3.5, 9)] == [0, 0, 1, 2, 2]
    schedule.set_stage(2)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert not any(bn.training for bn in bns)  # --train_bn false: every BN keeps its statistics...
    assert not any(p.requires_grad for bn in bns for p in bn.parameters())  # ...and its affine parameters


def test_lp_ft_switches_from_head_only_to_everything():
    model, view = tiny()
    strategy, context, model = apply_strategy(model, view, "lp_ft", lp_epochs=2)
    schedule = strategy.callbacks(context)[0]
    schedule.set_stage(schedule.stage_at(1.5))
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(view.head)
    schedule.set_stage(schedule.stage_at(2.0))
    assert all(p.requires_grad for p in model.parameters())


def test_llrd_learning_rate_per_group_and_scheduler_composition(tmp_path):
    model, view = tiny()
    strategy, context, model = apply_strategy(model, view, "llrd", layer_lr_decay=0.5, head_lr_multiplier=3.0)
    decay_names = frozenset(ht.training.TransferTrainer.get_decay_parameter_names(None, model))
    groups = strategy.optimizer_groups(model, context, OptimizerSettings(0.1, 0.01, decay_names))
    lr_of = {}
    for group in groups:
        for param in group["params"]:
            lr_of[id(param)] = group["lr"]
        if any(p.ndim == 1 for p in group["params"]):
            assert group["weight_decay"] == 0.0  # no decay on biases and norms
    params = dict(model.named_parameters())
    assert lr_of[id(params[view.head[0]])] == pytest.approx(0.3)
    assert lr_of[id(params[view.blocks[-1][0]])] == pytest.approx(0.05)  # top block: decay^1
    assert lr_of[id(params[view.blocks[0][0]])] == pytest.approx(0.1 * 0.5**view.num_blocks)
    assert lr_of[id(params[view.stem[0]])] == pytest.approx(0.1 * 0.5 ** (view.num_blocks + 1))
    assert len(lr_of) == sum(p.numel() > 0 for p in model.parameters())  # every parameter in exactly one group

    # through the Trainer: the scheduler scales every group, the ratios stay
    trainer = ht.training.trainer.TransferTrainer(
        model=model,
        args=ht.default_training_arguments(
            output_dir=str(tmp_path),
            learning_rate=0.1,
            lr_scheduler_type="linear",
            eval_strategy="no",
            load_best_model_at_end=False,
        ),
        strategy=strategy,
        context=context,
    )
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    for _ in range(4):
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    current = {g["group_name"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert current["head"] == pytest.approx(0.3 * 0.6) and current["stem"] == pytest.approx(0.1 * 0.5**7 * 0.6)


@pytest.mark.parametrize("arch", ["test_vit", "test_efficientnet"])
def test_lora_trains_adapters_and_head_and_round_trips(tmp_path, arch):
    from peft import PeftModel

    base, view = tiny(arch)
    base_state = copy.deepcopy(base.state_dict())
    strategy, context, model = apply_strategy(base, view, "lora", lora_r=4)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "modules_to_save" in n for n in trainable)
    head_copies = {n for n in trainable if "modules_to_save" in n}
    assert head_copies and all(any(h.rsplit(".", 1)[0] in n for h in view.head) for n in head_copies)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        adam_step(model, optimizer)
    model.eval()
    inputs = batch()["pixel_values"]
    expected = model(pixel_values=inputs).logits.detach()
    model.save_pretrained(tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "test" and config["r"] == 4

    fresh, _ = tiny(arch)
    fresh.load_state_dict(base_state)
    reloaded = PeftModel.from_pretrained(fresh, tmp_path / "adapter").eval()
    assert torch.allclose(reloaded(pixel_values=inputs).logits, expected, atol=1e-5)
    merged = reloaded.merge_and_unload().eval()
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    assert torch.allclose(merged(pixel_values=inputs).logits, expected, atol=1e-4)


def test_ia3_and_bitfit_train_only_their_parameters():
    model, view = tiny("test_vit")
    _, _, wrapped = apply_strategy(model, view, "ia3")
    trainable = {n for n, p in wrapped.named_parameters() if p.requires_grad}
    assert any("ia3_l" in n for n in trainable) and all("ia3_l" in n or "modules_to_save" in n for n in trainable)

    model, view = tiny("test_vit")
    apply_strategy(model, view, "bitfit")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if n.endswith(".bias")} | set(view.head)


def test_l2sp_against_a_hand_computation():
    model, view = tiny()
    strategy, _, model = apply_strategy(model, view, "l2sp", l2sp_alpha=0.3, l2sp_beta=0.7)
    params = dict(model.named_parameters())
    start = {n: params[n].detach().clone() for n in view.body()}
    with torch.no_grad():
        for name in view.body()[:5]:
            params[name].add_(0.1)
        for name in view.head:
            params[name].fill_(0.2)
    terms = strategy.regularisation(model, {}, None)
    body = sum(((params[n] - start[n]) ** 2).sum() for n in view.body())
    head = sum((params[n] ** 2).sum() for n in view.head)
    assert terms["l2sp_body"].item() == pytest.approx(0.3 / 2 * body.item(), rel=1e-5)
    assert terms["l2sp_head"].item() == pytest.approx(0.7 / 2 * head.item(), rel=1e-5)
    assert terms["l2sp_body"].item() > 0
    terms["l2sp_body"].backward()  # the term pulls the moved weights back towards w0
    assert torch.allclose(params[view.body()[0]].grad, torch.full_like(params[view.body()[0]], 0.3 * 0.1), atol=1e-6)


def test_lwf_against_a_hand_computation():
    import timm

    original = timm.create_model("test_vit", num_classes=5).eval()  # the "source task": 5 classes
    model, view = tiny()
    model.timm_model.load_state_dict(
        {k: v for k, v in original.state_dict().items() if not k.startswith("head.")}, strict=False
    )
    factory = lambda: SourceModel(  # noqa: E731
        model=copy.deepcopy(original), head=copy.deepcopy(original.head), forward=lambda m, x: m(x["pixel_values"])
    )
    from hf_transfer.strategies import StrategyContext

    strategy = ComposedStrategy(StrategyArguments(strategy="lwf", lwf_lambda=0.5, lwf_temperature=2.0))
    context = StrategyContext(view=view, task="image-classification", source_model_factory=factory)
    strategy.apply(context)
    torch.manual_seed(1)
    with torch.no_grad():  # move the shared body away from the original, so the term is non-zero
        for name in view.body():
            dict(model.named_parameters())[name].add_(torch.randn_like(dict(model.named_parameters())[name]) * 0.3)
    inputs = batch()
    model.eval()
    outputs = model(**inputs)
    term = strategy.regularisation(model, inputs, outputs)["lwf_distillation"]
    features = model.timm_model.forward_head(
        model.timm_model.forward_features(inputs["pixel_values"]), pre_logits=True
    )
    current, targets = original.head(features), original(inputs["pixel_values"])
    p = torch.softmax(targets / 2.0, dim=-1)
    expected = 0.5 * 4.0 * (p * (p.log() - torch.log_softmax(current / 2.0, dim=-1))).sum(-1).mean()
    assert term.item() == pytest.approx(expected.item(), rel=1e-4) and term.item() > 0


def test_lwf_teacher_normalises_like_the_student_so_identical_weights_give_zero():
    """A batch-norm body in training mode: at step 0 (student body = teacher body) the distillation term must be ~0,
    not the gap between batch and running statistics; and the teacher's running statistics never move."""
    import timm

    from hf_transfer.models.vision import image_block_view, wrap_timm_model
    from hf_transfer.strategies import StrategyContext

    torch.manual_seed(0)
    original = timm.create_model("test_efficientnet", num_classes=5).eval()
    for module in original.modules():  # non-trivial running statistics, far from any one batch's
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0.0, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    student = copy.deepcopy(original)
    student.reset_classifier(3)
    model = wrap_timm_model(student, ["a", "b", "c"])
    view = image_block_view(model)
    factory = lambda: SourceModel(  # noqa: E731
        model=copy.deepcopy(original),
        head=copy.deepcopy(original.get_classifier()),
        forward=lambda m, x: m(x["pixel_values"]),
    )
    strategy = ComposedStrategy(StrategyArguments(strategy="lwf"))
    strategy.apply(StrategyContext(view=view, task="image-classification", source_model_factory=factory))
    teacher = strategy.parts[1].teacher
    before = {k: v.clone() for k, v in teacher.state_dict().items() if "running" in k}
    model.train()
    inputs = {"pixel_values": torch.randn(8, 3, 32, 32)}
    term = strategy.regularisation(model, inputs, model(**inputs))["lwf_distillation"]
    assert term.item() == pytest.approx(0.0, abs=1e-4)
    assert all(torch.equal(teacher.state_dict()[k], v) for k, v in before.items())


def test_lwf_without_a_source_head_is_a_clear_error(tmp_path, sentiment_csv, tiny_bert_dir):
    config = ht.RecipeConfig(
        task="text-classification",
        model=ht.ModelArguments(model_name_or_path=str(tiny_bert_dir)),
        data=ht.DataArguments(train_file=str(sentiment_csv)),
        strategy=ht.StrategyArguments(strategy="lwf"),
        training=ht.default_training_arguments("text-classification", output_dir=str(tmp_path / "o")),
    )
    with pytest.raises(ConfigError, match="source-task classification head"):
        ht.fine_tune(config)


def test_wise_ft_interpolation_and_sweep(tmp_path):
    start = {"w": torch.zeros(3), "n": torch.tensor(1)}
    end = {"w": torch.ones(3) * 4, "n": torch.tensor(7)}
    mixed = interpolate(start, end, 0.25)
    assert torch.allclose(mixed["w"], torch.ones(3)) and mixed["n"].item() == 7

    data = write_imagefolder(tmp_path / "colours", per_class=8)
    result = ht.fine_tune(
        ht.RecipeConfig(
            model=ht.ModelArguments(model_name_or_path="test_convnext", from_scratch=True),
            data=ht.DataArguments(train_dir=str(data), image_size=32, no_augment=True, train_val_split=0.3),
            strategy=ht.StrategyArguments(strategy="full+wise_ft", wise_alphas="0,0.5,1"),
            training=ht.default_training_arguments(
                output_dir=str(tmp_path / "out"), num_train_epochs=3, per_device_train_batch_size=6
            ),
        )
    )
    sweep = {k: v for k, v in result.metrics.items() if k.startswith("wise_ft_alpha_")}
    assert set(sweep) == {"wise_ft_alpha_0_accuracy", "wise_ft_alpha_0.5_accuracy", "wise_ft_alpha_1_accuracy"}
    references = json.loads((tmp_path / "out" / "eval_predictions.json").read_text())["references"]
    # alpha 0 is the starting model: its zero-initialised head scores every class alike, so argmax says class 0
    assert sweep["wise_ft_alpha_0_accuracy"] == pytest.approx(references.count(0) / len(references))
    best = result.metrics["wise_ft_best_alpha"]
    assert result.metrics["eval_accuracy"] == pytest.approx(sweep[f"wise_ft_alpha_{best:g}_accuracy"])


def test_regulariser_terms_are_logged(tmp_path):
    data = write_imagefolder(tmp_path / "colours", per_class=6)
    result = ht.fine_tune(
        ht.RecipeConfig(
            model=ht.ModelArguments(model_name_or_path="test_convnext", from_scratch=True),
            data=ht.DataArguments(train_dir=str(data), image_size=32),
            strategy=ht.StrategyArguments(strategy="l2sp", l2sp_alpha=1.0),
            training=ht.default_training_arguments(
                output_dir=str(tmp_path / "out"), max_steps=4, logging_steps=2, per_device_train_batch_size=4
            ),
        )
    )
    logs = [e for e in result.trainer.state.log_history if "loss" in e]
    assert logs and all("l2sp_body" in e and "l2sp_head" in e for e in logs)
    assert logs[-1]["l2sp_body"] > 0


def test_lwf_from_the_text_recipe_with_a_source_head(tmp_path, sentiment_csv, tiny_bert_dir):
    """A text checkpoint with its own classification head (here: one we fine-tune first) keeps it under LwF."""

    def train(base: str, train_file, out: str, strategy: str):
        return ht.fine_tune(
            ht.RecipeConfig(
                task="text-classification",
                model=ht.ModelArguments(model_name_or_path=base),
                data=ht.DataArguments(train_file=str(train_file)),
                strategy=ht.StrategyArguments(strategy=strategy),
                training=ht.default_training_arguments(
                    "text-classification",
                    output_dir=str(tmp_path / out),
                    learning_rate=5e-3,
                    num_train_epochs=2,
                    logging_steps=1,
                    per_device_train_batch_size=8,
                ),
            )
        )

    source = train(str(tiny_bert_dir), sentiment_csv, "source", "full")  # a sentiment model: the "old task"
    texts = ["a wonderful film", "a dull, slow and thoroughly tedious mess of a movie"] * 6
    rows = [(t, "short" if len(t) < 20 else "long") for t in texts]
    new_task = write_text_csv(tmp_path / "length.csv", rows, ("text", "label"))
    result = train(source.output_dir, new_task, "lwf", "lwf")
    logs = [e for e in result.trainer.state.log_history if "lwf_distillation" in e]
    assert logs and logs[-1]["lwf_distillation"] >= 0 and any(e["lwf_distillation"] > 0 for e in logs)
