"""kappaflow.training.options: every training option of the config reaches both the training and held-out runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml
from kappaflow.training.options import CONFIG_OPTIONS, spec_options
from kappaflow.training.runner import RunSpec

PER_RULE = {"epochs"}  # set by each rule itself


def test_every_config_option_named_like_a_runspec_field_is_passed(repo_root: Path):
    schema = yaml.safe_load((repo_root / "workflow" / "schemas" / "config.schema.yaml").read_text())
    config_keys = set(schema["properties"]["training"]["properties"])
    spec_fields = {field.name for field in dataclasses.fields(RunSpec)}
    assert (config_keys & spec_fields) - PER_RULE == set(CONFIG_OPTIONS)


def test_spec_options_of_the_paper_config_make_a_run_spec(repo_root: Path):
    training = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())["training"]
    spec = RunSpec(
        step="I",
        train_on="Dataset1",
        seed=1,
        out_dir="x",
        graph_paths={},
        pretrained_dir="p",
        init="random",
        epochs=training["epochs"],
        **spec_options(training),
    )
    assert spec.collapse_patience == training["collapse_patience"] == 20
    assert spec.lr_decay_epochs == 1000 and spec.head_hidden == [450, 350, 350]
