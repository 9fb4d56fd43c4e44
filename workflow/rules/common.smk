from pathlib import Path

from snakemake.utils import validate


configfile: Path(workflow.basedir) / "config" / "config.yaml"


validate(config, schema="../schemas/config.schema.yaml")

GRAPH_DATASETS = ["aflow", "dataset1", "dataset2"]
HQ_DATASETS = ["dataset1", "dataset2"]
PRETRAINED = "resources/pretrained/MEGNet-MP-2018.6.1-Eform"
