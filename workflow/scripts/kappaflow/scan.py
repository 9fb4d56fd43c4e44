"""Materials Project low-κL scan: screening set → chunks → ensemble predictions → candidates and figure.

The screening set (``mp_id, formula``) comes from the mirror (``mp/screening_set.csv``) or from one
Materials Project query for stable materials (:func:`query_screening_set`). It is predicted in chunks
(one Snakemake job each, :func:`scan_chunk`) by every configured ensemble; rows that cannot become
a graph, or that hold an excluded element (radioactive by default), go to the quarantine with their
reason. Every prediction carries its trust columns (:mod:`kappaflow.trust`: calibrated interval, closest
training material, ``in_domain``). :func:`gather_scan` joins the chunks, asserts rows in = predicted +
rejected, and adds the spread between the ensembles' means for each material; :func:`write_candidates`
picks the candidates: per ensemble, the ``n_candidates`` lowest mean κ among the materials in the
ensemble's domain whose relative std (std / mean) is at most ``max_rel_std`` and that no model predicts
unphysical; an ensemble without any says why.

Each step runs in its own Snakemake env, so the heavy imports (mp-api, PyTorch, matplotlib) are
made inside the functions that need them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kappaflow.trust import TRUST_COLUMNS

log = logging.getLogger(__name__)

SCREENING_COLUMNS = ["mp_id", "formula"]
#: Then the trust columns (:data:`kappaflow.trust.TRUST_COLUMNS`: interval, closest training material, in_domain).
PREDICTION_COLUMNS = ["mp_id", "formula", "model", "pred_mean_wmk", "pred_std_wmk", "unphysical", "unseen_elements",
                      *TRUST_COLUMNS]
#: ``ensembles_rel_spread``: std / mean of the ensembles' mean predictions of the material (NaN with one ensemble).
GATHERED_COLUMNS = [*PREDICTION_COLUMNS, "ensembles_rel_spread"]
#: ``note``: empty for a candidate; for an ensemble without any, its one row says why.
CANDIDATE_COLUMNS = ["model", "rank", "mp_id", "formula", "pred_mean_wmk", "pred_std_wmk", "rel_std", "note"]
REJECTED_COLUMNS = ["mp_id", "reason"]


# --- screening set ---------------------------------------------------------------------------


def read_screening_set(path: str | Path, limit: int | None = None) -> pd.DataFrame:
    """``mp_id, formula`` from a CSV (first ``limit`` rows); duplicate ids are dropped with a warning."""
    table = pd.read_csv(path, dtype={"mp_id": str, "formula": str})
    missing = [column for column in SCREENING_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    table = table[SCREENING_COLUMNS]
    if table["mp_id"].duplicated().any():
        log.warning("%s: %d duplicate mp_id rows dropped", path, int(table["mp_id"].duplicated().sum()))
        table = table.drop_duplicates("mp_id")
    return table.head(limit).reset_index(drop=True) if limit else table.reset_index(drop=True)


def screening_query_kwargs(filters: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``mpr.materials.summary.search`` for the screening query.

    ``filters``: ``is_stable`` (bool), ``energy_above_hull_max`` (eV/atom), ``nsites_max``,
    ``exclude_elements`` (list); absent or null values do not filter.
    """
    kwargs: dict[str, Any] = {"fields": ["material_id", "formula_pretty"]}
    if filters.get("is_stable") is not None:
        kwargs["is_stable"] = bool(filters["is_stable"])
    if filters.get("energy_above_hull_max") is not None:
        kwargs["energy_above_hull"] = (0.0, float(filters["energy_above_hull_max"]))
    if filters.get("nsites_max") is not None:
        kwargs["num_sites"] = (1, int(filters["nsites_max"]))
    if filters.get("exclude_elements"):
        kwargs["exclude_elements"] = list(filters["exclude_elements"])
    return kwargs


def query_screening_set(endpoint: str, settings: Any, filters: Mapping[str, Any]) -> pd.DataFrame:
    """The screening set (``mp_id, formula``, sorted by id) from one Materials Project summary query."""
    from mp_api.client import MPRester

    from kappaflow.sources.http import make_session  # settings: a kappaflow.sources.http.HttpSettings
    from kappaflow.sources.materials_project import api_key_from_env

    api_key = api_key_from_env()
    session = make_session(settings)
    session.headers["x-api-key"] = api_key
    with MPRester(api_key=api_key, endpoint=endpoint, session=session, mute_progress_bars=True) as mpr:
        docs = mpr.materials.summary.search(**screening_query_kwargs(filters))
    table = pd.DataFrame(
        [(str(doc.material_id), str(doc.formula_pretty)) for doc in docs], columns=SCREENING_COLUMNS
    ).drop_duplicates("mp_id")
    log.info("Materials Project screening query: %d materials", len(table))
    return table.sort_values("mp_id", key=lambda ids: ids.map(_id_key)).reset_index(drop=True)


def _id_key(mp_id: str) -> tuple[str, int]:
    prefix, _, number = mp_id.partition("-")
    return (prefix, int(number)) if number.isdigit() else (prefix, -1)


def write_screening_set(
    output: str | Path, source: str, screening_csv: str | Path | None = None, limit: int | None = None,
    online: Mapping[str, Any] | None = None, filters: Mapping[str, Any] | None = None,
) -> int:
    """Write ``results/scan/screening_set.csv`` from the mirror's CSV or the online query; rows written."""
    from kappaflow.sources.http import HttpSettings

    if source == "mirror":
        table = read_screening_set(screening_csv, limit)
    elif source == "online":
        table = query_screening_set(online["mp_endpoint"], HttpSettings.from_config(online), filters or {})
        table = table.head(limit) if limit else table
    else:
        raise ValueError(f"source must be mirror or online, got {source!r}")
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(output, index=False)
    return len(table)


def n_chunks(n_rows: int, chunk_size: int) -> int:
    """Number of chunks of at most ``chunk_size`` rows (at least one, so an empty set still gathers)."""
    return max(1, math.ceil(n_rows / chunk_size))


# --- one chunk -------------------------------------------------------------------------------


def chunk_rows(screening: pd.DataFrame, chunk: int, chunk_size: int) -> pd.DataFrame:
    """Rows ``[chunk * chunk_size, (chunk + 1) * chunk_size)`` of the screening set."""
    return screening.iloc[chunk * chunk_size : (chunk + 1) * chunk_size].reset_index(drop=True)


def chunk_structures(
    mp_ids: Sequence[str], source: str, mirror_structures: str | Path | None = None,
    online: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """``{mp_id: Structure JSON}`` of a chunk's ids (mirror files, or one batched online query)."""
    from kappaflow.sources.http import HttpSettings
    from kappaflow.sources.materials_project import fetch_structures, read_mirror_structures

    if source == "mirror":
        return read_mirror_structures(list(mp_ids), mirror_structures)
    return fetch_structures(list(mp_ids), online["mp_endpoint"], HttpSettings.from_config(online))


def chunk_records(
    rows: pd.DataFrame, structures: Mapping[str, str], limits: Any, exclude_elements: Sequence[str] = ()
) -> tuple[list[dict[str, object]], list[dict[str, str]]]:
    """Graph-ready records of the rows, and ``{mp_id, reason}`` for every row that cannot become one or
    holds an element of ``exclude_elements``."""
    from pymatgen.core import Element

    from kappaflow.validation import InvalidRow, check_record, structure_json_record

    excluded_z = {Element(symbol).Z for symbol in exclude_elements}
    records, rejected = [], []
    for mp_id in rows["mp_id"]:
        try:
            record = structure_json_record(structures.get(mp_id))
            excluded = sorted({Element.from_Z(z).symbol for z in record["atomic_numbers"] if z in excluded_z})
            if excluded:
                raise InvalidRow(f"excluded element(s) {', '.join(excluded)} (scan.exclude_elements)")
            check_record(record, limits)
        except InvalidRow as error:
            rejected.append({"mp_id": mp_id, "reason": str(error)})
            continue
        except Exception as error:  # noqa: BLE001 (one odd structure must not fail the chunk)
            rejected.append({"mp_id": mp_id, "reason": f"cannot build its graph ({type(error).__name__}: {error})"})
            continue
        records.append({"id": mp_id, "dataset": "screening", "target": math.nan, **record})
    return records, rejected


def predict_records(
    records: Sequence[dict[str, object]], model_dirs: Mapping[str, str | Path], cutoff: float,
    batch_size: int = 64, device: str = "cpu",
) -> pd.DataFrame:
    """Featurize ``records`` once and predict them with every ensemble (``{name: folder}``)."""
    from kappaflow.domain import unseen_elements
    from kappaflow.predict import ensemble_outputs, graph_set, load_ensemble, mean_std
    from kappaflow.protocol import unphysical
    from kappaflow.trust import trust_columns

    graphs = graph_set(records, cutoff)
    elements = graphs.elements()
    parts = []
    for name, folder in model_dirs.items():
        ensemble = load_ensemble(folder, device, name=name)
        if ensemble.cutoff != cutoff:
            raise ValueError(f"{name}: models use a {ensemble.cutoff} Å cutoff, the scan {cutoff} Å")
        kappa, features = ensemble_outputs(ensemble, graphs, batch_size)
        mean, std = mean_std(kappa)
        unseen = [unseen_elements(found, ensemble.training_elements) for found in elements]
        part = pd.DataFrame({"mp_id": graphs.ids, "formula": graphs.formulas, "model": name,
                             "pred_mean_wmk": mean, "pred_std_wmk": std, "unphysical": unphysical(kappa).any(axis=0),
                             "unseen_elements": unseen})
        parts.append(pd.concat([part, trust_columns(ensemble.trust, kappa, features, unseen)], axis=1))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=PREDICTION_COLUMNS)


def scan_chunk(
    screening_csv: str | Path, chunk: int, chunk_size: int, model_dirs: Mapping[str, str | Path],
    predictions_out: str | Path, rejected_out: str | Path, source: str = "mirror",
    mirror_structures: str | Path | None = None, online: Mapping[str, Any] | None = None,
    cutoff: float = 4.0, min_distance: float = 0.5, exclude_elements: Sequence[str] = (), batch_size: int = 64,
    device: str = "cpu",
) -> tuple[int, int]:
    """Predict one chunk of the screening set; write its predictions and rejects; (predicted, rejected)."""
    import kappaflow.predict  # noqa: F401 (torch and matgl: imported before the freeze)
    from kappaflow.allocator import freeze_long_lived_objects, retain_freed_memory
    from kappaflow.validation import Limits

    retain_freed_memory()
    freeze_long_lived_objects()
    rows = chunk_rows(pd.read_csv(screening_csv, dtype={"mp_id": str, "formula": str}), chunk, chunk_size)
    structures = chunk_structures(rows["mp_id"], source, mirror_structures, online) if len(rows) else {}
    records, rejected = chunk_records(rows, structures, Limits(min_distance=min_distance, cutoff=cutoff),
                                      exclude_elements)
    predictions = (
        predict_records(records, model_dirs, cutoff, batch_size, device)
        if records else pd.DataFrame(columns=PREDICTION_COLUMNS)
    )
    if len(rows) != len(records) + len(rejected):
        raise RuntimeError(f"chunk {chunk}: {len(rows)} rows in but {len(records)} predicted + {len(rejected)} rejected")
    for path in (predictions_out, rejected_out):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    predictions[PREDICTION_COLUMNS].to_parquet(predictions_out, index=False)
    pd.DataFrame(rejected, columns=REJECTED_COLUMNS).to_csv(rejected_out, index=False)
    log.info("chunk %d: %d rows, %d predicted, %d rejected", chunk, len(rows), len(records), len(rejected))
    return len(records), len(rejected)


# --- gather ----------------------------------------------------------------------------------


def in_domain(predictions: pd.DataFrame) -> pd.Series:
    """``in_domain`` as booleans (a CSV round trip gives strings; unknown counts as out of domain)."""
    return predictions["in_domain"].astype(str) == "True"


def select_candidates(predictions: pd.DataFrame, n_candidates: int, max_rel_std: float) -> pd.DataFrame:
    """Per model, the ``n_candidates`` lowest mean κ in the ensemble's domain with ``std / mean ≤ max_rel_std``
    (NaN std fails) that no model predicts unphysical (κ ≤ 0)."""
    table = predictions.assign(rel_std=predictions["pred_std_wmk"] / predictions["pred_mean_wmk"].abs())
    confident = table[(table["rel_std"] <= max_rel_std) & ~table["unphysical"].astype(bool) & in_domain(table)]
    picked = (
        confident.sort_values(["model", "pred_mean_wmk", "mp_id"]).groupby("model", sort=True).head(n_candidates)
    )
    picked = picked.assign(rank=picked.groupby("model").cumcount() + 1, note="")
    empty = [{"model": model, "note": no_candidate_note(part, max_rel_std)}
             for model, part in table.groupby("model", sort=True) if model not in set(picked["model"])]
    return pd.concat([picked, pd.DataFrame(empty, columns=CANDIDATE_COLUMNS)], ignore_index=True)[CANDIDATE_COLUMNS]


def no_candidate_note(table: pd.DataFrame, max_rel_std: float) -> str:
    """Why one ensemble's predictions (with ``rel_std``) hold no candidate."""
    unphysical = table["unphysical"].astype(bool)
    outside = ~unphysical & ~in_domain(table)
    uncertain = ~unphysical & ~outside & ~(table["rel_std"] <= max_rel_std)
    lowest = table.loc[~unphysical & ~outside, "rel_std"].min()
    return (f"no candidate: of {len(table)} materials, {int(unphysical.sum())} have an unphysical prediction "
            f"(κ ≤ 0), {int(outside.sum())} lie outside the ensemble's domain (unseen elements or beyond its "
            f"distance threshold) and {int(uncertain.sum())} have a relative std above max_rel_std "
            f"{max_rel_std:g} or undefined (lowest {lowest:.3g})")


def gather_scan(
    screening_csv: str | Path, prediction_parts: Sequence[str | Path], rejected_parts: Sequence[str | Path],
    predictions_out: str | Path, rejected_out: str | Path,
) -> dict[str, int]:
    """Join the chunks, check rows in = predicted + rejected, write the predictions and the rejects."""
    screening = pd.read_csv(screening_csv, dtype={"mp_id": str})
    predictions = pd.concat([pd.read_parquet(path) for path in prediction_parts], ignore_index=True)
    rejected = pd.concat([pd.read_csv(path, dtype=str) for path in rejected_parts], ignore_index=True)
    predicted_ids = set(predictions["mp_id"])
    rejected_ids = set(rejected["mp_id"])
    if predicted_ids & rejected_ids:
        raise RuntimeError(f"{len(predicted_ids & rejected_ids)} ids are both predicted and rejected")
    if len(screening) != len(predicted_ids) + len(rejected_ids) or set(screening["mp_id"]) != predicted_ids | rejected_ids:
        raise RuntimeError(
            f"{len(screening)} rows in but {len(predicted_ids)} predicted + {len(rejected_ids)} rejected"
        )
    order = {mp_id: i for i, mp_id in enumerate(screening["mp_id"])}
    predictions = predictions.sort_values(["model", "mp_id"], key=lambda c: c.map(order) if c.name == "mp_id" else c)
    means = predictions.groupby("mp_id")["pred_mean_wmk"]
    predictions["ensembles_rel_spread"] = predictions["mp_id"].map(means.std(ddof=1) / means.mean().abs())
    for path in (predictions_out, rejected_out):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    predictions[GATHERED_COLUMNS].to_csv(predictions_out, index=False)
    rejected[REJECTED_COLUMNS].to_csv(rejected_out, index=False)
    counts = {"rows_in": len(screening), "predicted": len(predicted_ids), "rejected": len(rejected_ids)}
    log.info("scan: %s", counts)
    return counts


def write_candidates(
    predictions_csv: str | Path, candidates_out: str | Path, n_candidates: int, max_rel_std: float
) -> pd.DataFrame:
    """:func:`select_candidates` of the gathered predictions, written to ``candidates_out``."""
    candidates = select_candidates(pd.read_csv(predictions_csv, dtype={"mp_id": str}), n_candidates, max_rel_std)
    Path(candidates_out).parent.mkdir(parents=True, exist_ok=True)
    candidates.to_csv(candidates_out, index=False)
    log.info("scan: %d candidates", len(candidates))
    return candidates


# --- figure ----------------------------------------------------------------------------------


def scan_figure(predictions_csv: str | Path, candidates_csv: str | Path, max_rel_std: float, path: str | Path) -> list[Path]:
    """Distribution of predicted κ per model with the candidates marked, and mean vs relative std."""
    from kappaflow.figures import plt, save

    predictions = pd.read_csv(predictions_csv)
    candidates = pd.read_csv(candidates_csv).dropna(subset=["rank"])  # an ensemble without any: a note row
    off_axis = predictions[predictions["pred_mean_wmk"] <= 0].groupby("model").size()  # a log axis has no κ ≤ 0
    predictions = predictions[predictions["pred_mean_wmk"] > 0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    models = sorted(predictions["model"].unique())
    colors = dict(zip(models, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    positive = predictions["pred_mean_wmk"]
    bins = np.logspace(np.log10(max(positive.min(), 1e-3)), np.log10(max(positive.max(), 1e-2)) + 1e-9, 40) if len(positive) else 10
    for model in models:
        part = predictions[predictions["model"] == model]
        picked = candidates[candidates["model"] == model]
        hidden = f"; {off_axis[model]} with mean κ ≤ 0 not drawn" if model in off_axis else ""
        left.hist(part["pred_mean_wmk"], bins=bins, histtype="step", color=colors[model],
                  label=f"{model} ({len(part)}{hidden})")
        left.plot(picked["pred_mean_wmk"], np.zeros(len(picked)), "|", ms=14, mew=1.5, color=colors[model])
        rel = part["pred_std_wmk"] / part["pred_mean_wmk"]
        right.scatter(part["pred_mean_wmk"], rel, s=5, alpha=0.35, color=colors[model], label=model)
        right.scatter(picked["pred_mean_wmk"], picked["rel_std"], s=36, facecolors="none", edgecolors=colors[model])
    left.set(xscale="log", xlabel="predicted κL, ensemble mean (W/mK)", ylabel="materials",
             title="Screening set: predicted κL (ticks: candidates)")
    right.axhline(max_rel_std, color="0.3", ls="--", lw=1, label=f"max rel. std {max_rel_std:g}")
    right.set(xscale="log", xlabel="predicted κL, ensemble mean (W/mK)", ylabel="relative std (std / mean)",
              title="Ensemble uncertainty (circles: candidates)")
    for axis in (left, right):
        if models:
            axis.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return save(fig, path)
