"""The README's generated parts stay what the code generates: a default or a setting is written once, in the code."""

from __future__ import annotations

import re

from hf_transfer.strategies.catalog import strategy_table_markdown

from .conftest import REPO


def test_readme_strategy_table_is_the_registry():
    readme = (REPO / "README.md").read_text()
    match = re.search(r"<!-- strategy-table:.*?-->\n(.*?)\n<!-- /strategy-table -->", readme, re.S)
    assert match, "README.md lost its strategy-table markers"
    assert match.group(1) == strategy_table_markdown(), "run `hf-transfer strategies --markdown` and paste the table"


def test_every_setting_flag_says_its_default_once():
    """The parser's help for a setting is derived from its declaration (reader, help, default), not written apart."""
    import dataclasses

    from hf_transfer.strategies import StrategyArguments, get_strategy_class

    fields = {f.name: f for f in dataclasses.fields(StrategyArguments) if f.name != "strategy"}
    lora_r = get_strategy_class("lora").declared("lora_r")
    assert fields["lora_r"].default is None  # "not set": the declared default applies
    assert fields["lora_r"].metadata["help"] == f"lora: {lora_r.help} ({lora_r.default})."
    assert "freeze/gradual_unfreeze" in fields["train_bn"].metadata["help"]  # one shared setting, both readers
