"""External inputs, online or from the offline mirror, one module per source.

- :mod:`~kappaflow.sources.http`: the retrying HTTP session and atomic downloads.
- :mod:`~kappaflow.sources.checksums`: sha256 of files and label rows (the manifests), copy-if-changed.
- :mod:`~kappaflow.sources.aflow`: AFLOW AGL labels and CIFs (AFLUX).
- :mod:`~kappaflow.sources.materials_project`: Dataset1/Dataset2 labels with MP structures.
- :mod:`~kappaflow.sources.pretrained`: the pretrained MEGNet files.

Each module has one ``acquire_*`` entry point for its Snakemake rule. Nothing is imported here,
so that fetching AFLOW CIFs does not pay for importing ``mp_api``.
"""
