from pathlib import Path

from snakemake.utils import validate


configfile: Path(workflow.basedir) / "config" / "config.yaml"


validate(config, schema="../schemas/config.schema.yaml")

GRAPH_DATASETS = ["aflow", "dataset1", "dataset2"]
HQ_DATASETS = ["dataset1", "dataset2"]
PRETRAINED = "resources/pretrained/MEGNet-MP-2018.6.1-Eform"


def repo_path(path):
    """A config path: absolute as given, relative ones against the repository root."""
    path = Path(path)
    return path if path.is_absolute() else (Path(workflow.basedir) / path).resolve()


MIRROR_DIR = repo_path(config["mirror_dir"])
if config["source"] == "mirror" and not MIRROR_DIR.is_dir():
    raise WorkflowError(
        f"source: mirror, but the mirror folder {MIRROR_DIR} does not exist; "
        "set mirror_dir or use source: online"
    )
