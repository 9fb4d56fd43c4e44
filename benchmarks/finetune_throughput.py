"""Fine-tuning throughput of every backbone: training structures/s in kappaflow's Lightning loop.

Each backbone is fine-tuned as rule ``finetune_backbone`` does it: :class:`~kappaflow.backbones.network.BackboneNet`
(pretrained backbone and the paper's head) in :class:`~kappaflow.training.module.KappaModule`, each shuffled batch
collated anew into the backbone's own graphs (:class:`kappaflow.training.finetune.Part`). MEGNet-2018 through the same
interface is the baseline, timed in the same run; the row ``KappaNet`` is MEGNet-2018 as steps I-III train it (its
fast path: quotient graphs of the workflow's graph parquet, collated from flat arrays).

    python benchmarks/finetune_throughput.py --set Dataset1 --epochs 5 --threads 1 [--backbones ...] [--doc PATH]

The structures are the mirror's (``--set Dataset1``, ``Dataset2`` or ``AFLOW``, the first ``--limit`` of them),
all of them in the training loader, validation limited to one batch; the first epoch is a warm-up. Each backbone
keeps its best of ``--repeats`` rounds, which take the backbones in turn. The last column projects one 300-epoch
run on the set's 80 % training split at the measured rate (training passes only: the validation pass of each
epoch adds a forward pass over the other 20 %).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import doc
import lightning as pl
import numpy as np
import pandas as pd
import torch
from kappaflow.allocator import retain_freed_memory
from kappaflow.backbones import BACKBONES, load_backbone
from kappaflow.backbones.network import BackboneNet
from kappaflow.model import PAPER_HEAD_HIDDEN
from kappaflow.protocol import FINE_TUNED_BACKBONE
from kappaflow.training.finetune import Part
from kappaflow.training.module import KappaModule
from kappaflow.training.scaling import TargetScaler
from pymatgen.core import Structure
from train_throughput import MIRROR, epoch_rate, graph_set, lightning_loop, mirror_structures

SETS = ("Dataset1", "Dataset2", "AFLOW")
EPOCHS, TRAIN_FRACTION = 300, 0.8
KAPPANET = "KappaNet"


def backbone_rate(name: str, structures: list[Structure], kappa: np.ndarray, batch_size: int, epochs: int) -> float:
    """Training structures/s of backbone ``name`` fine-tuned in the Lightning loop (mean of the timed epochs)."""
    pl.seed_everything(1, verbose=False)
    backbone = load_backbone(name, MIRROR / "pretrained")
    if reasons := [f"{s.composition.reduced_formula}: {why}" for s in structures if (why := backbone.supports(s))]:
        raise SystemExit(f"{name} cannot take {len(reasons)} structure(s) of the set, e.g. {reasons[0]}")
    net = BackboneNet(backbone, PAPER_HEAD_HIDDEN)
    materials = pd.DataFrame({"target": kappa})
    train, val = Part(materials, structures), Part(materials.head(batch_size), structures[:batch_size])
    module = KappaModule(net, TargetScaler.fit(kappa, "log10_kappa"), lr=1e-3, lr_decay_epochs=1000,
                         lr_min_factor=0.01, collapse_patience=None, loss="l1_log", grad_clip_norm=None)
    return epoch_rate(module, train.loader(net, batch_size, shuffle=True, seed=1), val.loader(net, batch_size),
                      len(structures), epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=SETS, default="Dataset1")
    parser.add_argument("--limit", type=int, help="only the first N structures of the set (AFLOW: default 200)")
    parser.add_argument("--backbones", nargs="+", choices=list(BACKBONES), default=list(BACKBONES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs after the warm-up epoch")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over every backbone; each keeps its best")
    parser.add_argument("--doc", type=Path, help="also write this benchmark's section of this markdown file")
    args = parser.parse_args()
    limit = args.limit if args.limit or args.set != "AFLOW" else 200
    ids, structures, kappa, whole = mirror_structures(args.set, limit)
    run = doc.Run()
    torch.set_num_threads(args.threads)
    retain_freed_memory()  # as kappaflow.training.runner does
    names = [FINE_TUNED_BACKBONE, *[name for name in args.backbones if name != FINE_TUNED_BACKBONE]]
    graphs = graph_set(list(zip(ids, structures, kappa)))
    rates: dict[str, float] = {}
    for round_ in range(args.repeats):  # rounds interleave the backbones, so a slow spell hits one round of each
        for name in [*names, KAPPANET]:
            rate = (lightning_loop(graphs, args.batch_size, args.epochs) if name == KAPPANET
                    else backbone_rate(name, structures, kappa, args.batch_size, args.epochs))
            rates[name] = max(rate, rates.get(name, 0.0))
            print(f"round {round_ + 1}, {name}: {rate:.1f} structures/s", flush=True)
    print(json.dumps({name: round(rate, 2) for name, rate in rates.items()}))
    if args.doc:
        write_doc(args, run, len(structures), whole, rates)


def write_doc(args: argparse.Namespace, run: doc.Run, n: int, whole: int, rates: dict[str, float]) -> None:
    """This run's section of ``args.doc``: every rate also relative to MEGNet-2018 through the interface, and the
    projected training time of a 300-epoch run on 80 % of the ``whole`` set."""
    baseline = rates[FINE_TUNED_BACKBONE]
    trained = round(whole * TRAIN_FRACTION)
    rows = []
    for name, rate in rates.items():
        label = f"{name} (baseline)" if name == FINE_TUNED_BACKBONE else (
            f"{KAPPANET} (MEGNet-2018 as steps I-III train it)" if name == KAPPANET else name)
        rows.append([label, f"{rate:,.1f}", doc.ratio(rate, baseline), f"{EPOCHS * trained / rate / 60:,.1f}"])
    header = ["backbone", "training structures/s", "vs megnet-2018-eform fine-tuned (baseline)",
              f"300-epoch run on {args.set}'s training split, min"]
    lines = [
        f"{n} structures of the mirror's {args.set}, batch {args.batch_size}, {args.threads} thread(s), "
        f"{args.epochs} timed epochs after a warm-up epoch, validation one batch; best of {args.repeats} rounds that "
        "take the backbones in turn. Each backbone is fine-tuned as rule "
        "`finetune_backbone` does it (pretrained backbone and the paper's head, each shuffled batch collated into the "
        "backbone's own graphs); MEGNet-2018 through the same interface is the baseline. The last column projects the "
        f"training passes of one 300-epoch run on 80 % of {args.set} ({trained} of its {whole} structures) at "
        "that rate; each epoch's validation pass comes on top.",
        "",
        doc.table(header, rows),
    ]
    doc.write_section(args.doc, "finetune_throughput", "Fine-tuning per backbone (`benchmarks/finetune_throughput.py`)",
                      "\n".join(lines), run)


if __name__ == "__main__":
    main()
