# kappaflow: two-stage transfer learning of lattice thermal conductivity (ParAIsite).
from snakemake.utils import min_version

min_version("9.0")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/scan.smk"
include: "workflow/rules/backbones.smk"
include: "workflow/rules/ship.smk"


rule all:
    default_target: True
    input:
        data_targets(),
        prepare_targets(),
        train_targets(),
        evaluate_targets(),
        scan_targets(),
        frozen_targets(),
        ship_targets(),
