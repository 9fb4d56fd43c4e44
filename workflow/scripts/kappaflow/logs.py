"""Logging of a Snakemake script job into its rule's log file."""

from __future__ import annotations

import logging
import sys

from kappaflow.provenance import describe

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_to_file(path: str) -> None:
    """Send this process's stderr, INFO logging and warnings to ``path`` (the rule's ``log:``).

    The first line names the kappaflow that runs: version, git commit and package path.
    """
    sys.stderr = open(path, "w")  # noqa: SIM115 (stays open for the whole job)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=LOG_FORMAT, force=True)
    logging.captureWarnings(True)
    logging.getLogger(__name__).info(describe())
