"""Genuine transfer: real ImageNet weights beat random initialisation on real digits, through the library API."""

import pytest

import hf_transfer as ht


def linear_probe_accuracy(tmp_path, from_scratch: bool) -> float:
    config = ht.RecipeConfig(
        model=ht.ModelArguments(from_scratch=from_scratch),  # default: the built-in EfficientNet-Lite0 weights
        data=ht.DataArguments(max_train_samples=300, max_eval_samples=200, image_size=64, no_augment=True),
        strategy=ht.StrategyArguments(strategy="linear_probe"),
        training=ht.default_training_arguments(
            output_dir=str(tmp_path / ("scratch" if from_scratch else "pretrained")),
            num_train_epochs=6,
            learning_rate=0.01,
            eval_strategy="no",
            save_strategy="no",
            load_best_model_at_end=False,
            logging_steps=50,
            seed=0,
        ),
    )
    result = ht.fine_tune(config)
    assert result.trainable_parameters == 1280 * 10 + 10  # the new head only
    return result.metrics["eval_accuracy"]


@pytest.mark.slow
def test_pretrained_linear_probe_beats_random_init_on_real_digits(tmp_path):
    pretrained = linear_probe_accuracy(tmp_path, from_scratch=False)
    scratch = linear_probe_accuracy(tmp_path, from_scratch=True)
    print(f"linear probe on 300 MNIST digits: pretrained {pretrained:.3f}, random init {scratch:.3f}")
    assert pretrained >= 0.75
    assert pretrained >= scratch + 0.25
