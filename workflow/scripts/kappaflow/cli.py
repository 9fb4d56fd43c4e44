"""The ``kappaflow`` command.

``kappaflow predict [--model DIR] [--out FILE] [--device auto|cpu|cuda] [--batch-size N] FILE_OR_ID ...``
prints (or writes) ``input, formula, pred_mean_wmk, pred_std_wmk, n_models, …, error`` with the model shipped in
the package unless ``--model`` names another ensemble. Each bad input gets one line on stderr and a row with
its ``error``; the exit status is 0 when at least one structure was predicted, 1 when none was, 2 for a
usage error (bad option, missing model folder).

``kappaflow models [--model DIR] [--json]`` prints the card of the shipped model (or of an exported one).
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from kappaflow import __version__
from kappaflow.protocol import DEFAULT_MODEL_DIR, DEFAULT_PRETRAINED_ROOT
EXIT_OK, EXIT_NO_PREDICTION, EXIT_USAGE = 0, 1, 2
_NO_SHIPPED_MODEL = " (this installation ships no model: pass --model with a trained ensemble folder)"
#: Inputs from which a progress bar is shown (on stderr, when it is a terminal).
PROGRESS_FROM = 50


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``kappaflow`` and its subcommands."""
    parser = argparse.ArgumentParser(prog="kappaflow", description="Lattice thermal conductivity with kappaflow.")
    parser.add_argument("--version", action="version", version=f"kappaflow {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    predict = commands.add_parser(
        "predict",
        help="predict κL (W/mK, 300 K) of structures with a trained ensemble",
        description="Predict κL (W/mK) with every run of a trained ensemble: mean and std over the runs.",
    )
    predict.add_argument("inputs", nargs="+", metavar="FILE_OR_ID",
                         help="CIF, POSCAR/CONTCAR or pymatgen JSON files, folders of them, Materials Project ids")
    predict.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR,
                         help="ensemble folder with run*/best.ckpt (e.g. results/models/stepIII/MIX, or a fine-tuned "
                              "backbone's results/finetuned/m3gnet-matpes-2025/stepII/Dataset1), or one run folder "
                              "(default: the model shipped in the package, see `kappaflow models`)")
    predict.add_argument("--pretrained-root", type=Path, default=DEFAULT_PRETRAINED_ROOT,
                         help="where a fine-tuned backbone other than MEGNet is rebuilt from: the workflow "
                              "directory's resources/pretrained (the default) or the mirror's pretrained/")
    predict.add_argument("--out", type=Path, help="write the table to this .csv or .parquet file (default: CSV on stdout)")
    predict.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: auto")
    predict.add_argument("--batch-size", type=_positive, default=64, help="graphs per forward pass (default: 64)")
    predict.add_argument("--mp-source", default="mirror", choices=["mirror", "online"],
                         help="resolve Materials Project ids from the offline mirror or online (MP_API_KEY)")
    predict.add_argument("--mirror-dir", type=Path,
                         help="offline mirror holding mp/structures/ (default: $KAPPAFLOW_MIRROR_DIR or ../shared/data)")
    predict.add_argument("--mp-endpoint", default="https://api.materialsproject.org", help=argparse.SUPPRESS)
    predict.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                         help=f"progress bar on stderr (default: from {PROGRESS_FROM} inputs, on a terminal)")
    models = commands.add_parser(
        "models",
        help="print the card of the shipped model: training data, protocol, held-out error, provenance",
        description="Print the card of the model shipped in the package, or of an exported model folder.",
    )
    models.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR,
                        help="exported model folder holding card.json (default: the shipped model)")
    models.add_argument("--json", action="store_true", help="print card.json itself (with the configuration)")
    return parser


def _say(message: str, command: str = "predict") -> None:
    print(f"kappaflow {command}: {message}", file=sys.stderr)


def _model_message(error: Exception, model: Path) -> str:
    """The error of loading ``model``, saying what to do when it is the (absent) shipped model."""
    return f"{error}{_NO_SHIPPED_MODEL if model == DEFAULT_MODEL_DIR else ''}"


def models_command(args: argparse.Namespace) -> int:
    """Run ``kappaflow models``; returns the exit status."""
    import json

    from kappaflow.predict import ModelError
    from kappaflow.shipped import describe_card, read_card

    try:
        card = read_card(args.model)
    except ModelError as error:
        _say(_model_message(error, args.model), "models")
        return EXIT_USAGE
    print(json.dumps(card, indent=2) if args.json else describe_card(card))
    return EXIT_OK


def predict_command(args: argparse.Namespace) -> int:
    """Run ``kappaflow predict``; returns the exit status."""
    from kappaflow.allocator import freeze_long_lived_objects, retain_freed_memory
    from kappaflow.inputs import MPSource, default_mirror_dir, read_inputs
    from kappaflow.predict import ModelError, load_ensemble, predict_items, resolve_device

    retain_freed_memory()

    if args.out is not None and args.out.suffix.lower() not in (".csv", ".parquet"):
        _say(f"--out {args.out}: expected a .csv or .parquet file")
        return EXIT_USAGE
    try:
        ensemble = load_ensemble(args.model, resolve_device(args.device), pretrained_root=args.pretrained_root)
    except ModelError as error:
        _say(_model_message(error, args.model))
        return EXIT_USAGE
    freeze_long_lived_objects()
    source = MPSource(mode=args.mp_source, mirror_dir=args.mirror_dir or default_mirror_dir(), endpoint=args.mp_endpoint)
    items = read_inputs(args.inputs, source)
    progress = args.progress if args.progress is not None else (len(items) >= PROGRESS_FROM and sys.stderr.isatty())
    table = predict_items(items, ensemble, batch_size=args.batch_size, progress=progress)
    for row in table.itertuples():
        if isinstance(row.error, str):
            _say(f"{row.input}: {row.error}")
    if args.out is None:
        table.to_csv(sys.stdout, index=False)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if args.out.suffix.lower() == ".parquet":
            table.to_parquet(args.out, index=False)
        else:
            table.to_csv(args.out, index=False)
    from kappaflow.trust import trust_warnings

    for line in trust_warnings(ensemble.trust):
        _say(line)
    n_ok = int(table["error"].isna().sum())
    if n_ok < len(table):
        _say(f"{n_ok} of {len(table)} structures predicted")
    return EXIT_OK if n_ok else EXIT_NO_PREDICTION


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kappaflow`` console command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="kappaflow: %(message)s")
    warnings.filterwarnings("ignore")  # pymatgen/torch chatter would drown the one-line messages
    if args.command == "predict":
        return predict_command(args)
    if args.command == "models":
        return models_command(args)
    return EXIT_USAGE  # pragma: no cover (argparse rejects unknown commands)


if __name__ == "__main__":
    sys.exit(main())
