"""Every strategy, from both recipes' code path, on real shipped weights and data: a short run trains above chance."""

import pytest

import hf_transfer as ht

HEAD_OR_ADAPTER = {"linear_probe", "lora", "ia3", "bitfit"}
IMAGE_SETTINGS = {
    "freeze": {"freeze_blocks": 8},
    "gradual_unfreeze": {"unfreeze_every": 0.25},
    "lp_ft": {"lp_epochs": 0.5},
    "full+wise_ft": {"wise_alphas": "0.5,1"},
    # With the teacher normalised like the student, distillation is a real restraint from the first step (~1.1 after
    # 10 steps at lambda 1, holding the new head at 0.17 after 16 steps): a short run needs a light touch.
    "lwf": {"lwf_lambda": 0.1},
}
TEXT_SETTINGS = {**IMAGE_SETTINGS, "freeze": {"freeze_blocks": 3}}
STRATEGIES = [
    "linear_probe", "freeze", "full", "gradual_unfreeze", "llrd", "lora", "ia3", "bitfit", "l2sp", "lwf", "lp_ft",
    "full+wise_ft",
]  # fmt: skip


def short_run(
    tmp_path, task: str, strategy: str, data: ht.DataArguments, settings: dict, lr: float, epochs: float, **model
):
    config = ht.RecipeConfig(
        task=task,
        model=ht.ModelArguments(**model),
        data=data,
        strategy=ht.StrategyArguments(strategy=strategy, **settings.get(strategy, {})),
        training=ht.default_training_arguments(
            task,
            output_dir=str(tmp_path / "out"),
            num_train_epochs=epochs,
            learning_rate=lr,
            per_device_train_batch_size=16,
            eval_strategy="no",
            save_strategy="no",
            load_best_model_at_end=False,
            logging_steps=10,
            seed=0,
        ),
    )
    return ht.fine_tune(config).metrics


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_image_strategy_on_lite0_and_mnist(tmp_path, strategy):
    data = ht.DataArguments(max_train_samples=256, max_eval_samples=200, image_size=48, no_augment=True)
    # LoRA learns at its own default rate (1e-3): at 1e-2 it is unstable on Lite0's pointwise convolutions (its loss
    # first rises above the zero head's 2.30, benchmarks/RESULTS.md), so its score after 32 steps is decided by float
    # rounding: 0.2 on one machine of the CI kind, 0.685 on another with one torch thread. At 1e-3: 0.835 (seed 1:
    # 0.740), both one thread.
    lr = 1e-3 if strategy == "lora" else 1e-2 if strategy in HEAD_OR_ADAPTER else 1e-3
    metrics = short_run(tmp_path, "image-classification", strategy, data, IMAGE_SETTINGS, lr, epochs=2)
    # After 32 steps at 48 px the strategies score 0.455-0.83 (llrd lowest; at 64 px, 0.83x slower side by side,
    # 0.435-0.835, 7 Dec); the lowest are those whose batch-norm statistics lag behind fast-moving weights (full,
    # bitfit, ...; after 16 steps full sat at 0.325). "Trains above chance" is asserted with a bar of twice chance: a
    # model at chance (0.1) reaches it on these 200 digits about once in a million runs (4.7 standard deviations), and
    # the lowest strategy clears it by 0.25 (51 digits), far beyond rounding noise.
    assert metrics["eval_accuracy"] > 0.2, metrics  # chance: 0.1


# Not on text: lwf (MiniLM has no source head: test_transfer_strategies runs it from a text checkpoint with one);
# l2sp, lp_ft and bitfit, whose code has no modality in it: the body and head they read are the text view that
# full+wise_ft and linear_probe train here, lp_ft's stages are gradual_unfreeze's callback, bitfit picks parameters by
# the name ".bias", and all three run on real weights above (images); freeze, whose text-specific part (MiniLM's
# blocks) is the block view gradual_unfreeze and llrd use here; and full, which full+wise_ft trains whole before it
# blends (its alpha = 1 is asserted below). Each was 25-70 s of the suite's two workers.
TEXT_STRATEGIES = [s for s in STRATEGIES if s not in ("lwf", "l2sp", "lp_ft", "bitfit", "freeze", "full")]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", TEXT_STRATEGIES)
def test_text_strategy_on_minilm_and_reviews(tmp_path, strategy):
    # 32 tokens (a review snippet averages 27): 0.67x the time of 48 for the same strategies, side by side (7 Dec)
    data = ht.DataArguments(max_train_samples=320, max_eval_samples=300, max_seq_length=32)
    lr = {"ia3": 1e-2}.get(strategy, 3e-3 if strategy in HEAD_OR_ADAPTER else 2e-4)
    # mean pooling: MiniLM's [CLS] pooler is untrained, and 40 steps are too few to train it *and* show transfer
    metrics = short_run(tmp_path, "text-classification", strategy, data, TEXT_SETTINGS, lr, epochs=2, pooling="mean")
    # Measured (one torch thread, 7 Dec; full, bitfit and freeze no longer run here): linear_probe 0.633, full 0.647,
    # bitfit 0.647, lora 0.673, freeze 0.677, llrd 0.680, full+wise_ft 0.680, ia3 0.697, gradual_unfreeze 0.713 (at
    # 48 tokens 0.663 to 0.730). The bar is 3.4 standard deviations above chance, and the lowest of these clears it
    # by 10 reviews: at these gentle rates (2e-4 for the body) rounding moves a score by a review or two, not by 10.
    assert metrics["eval_accuracy"] > 0.6, metrics  # chance: 0.5 (300 examples: ±0.03)
    if strategy == "full+wise_ft":
        assert metrics["wise_ft_alpha_1_accuracy"] > 0.6, metrics  # alpha 1: `full` alone (measured 0.647)
