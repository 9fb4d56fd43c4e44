"""Row-by-row validation of the labelled structures, with quarantine of the bad rows.

Each input row (an AFLOW label with its CIF, or a Materials Project structure with its label) is
either *kept*, as a ``kappaflow.graphs.STRUCTURE_SCHEMA`` record, or *rejected* with one
human-readable reason naming the file or row. Checks, in order (the first failure is reported):

1. the id is present and not seen before in the table: a later duplicate with the same κ is
   rejected; duplicates with different κ are all rejected (a conflict, naming the values);
2. κ is a finite number > 0 (W/mK);
3. the structure exists and parses (a CIF missing from its source, as the acquisition manifest
   says; an empty file, an unreadable CIF, no structure from Materials Project);
4. the structure is ordered and has atoms, and every element is one of MEGNet's 89 types;
5. the cell is not degenerate (volume > 0) and the coordinates are finite;
6. no two atoms (periodic images included) are closer than ``min_distance``;
7. every atom has a neighbour within the graph ``cutoff`` (an isolated atom gets no edges).

A bad row never stops the run (an unexpected error while checking a row rejects that row, naming the
error); only unreadable *tables* (missing columns) raise.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from pymatgen.core import Composition, DummySpecies, Element, Structure
from pymatgen.io.cif import CifParser
from tqdm import tqdm

from kappaflow import graphs

log = logging.getLogger(__name__)

AFLOW_COLUMNS = ("entry", "agl_thermal_conductivity_300K")
#: Columns of the AFLOW acquisition manifest that validation reads (an empty sha256: no CIF, why).
MANIFEST_COLUMNS = ("entry", "sha256", "missing")
MP_COLUMNS = ("mp_id", "ltc_wmk", "structure")
REJECTED_COLUMNS = ["dataset", "id", "reason"]
#: Cells whose volume is below this fraction of a·b·c are degenerate (flat).
_FLAT_CELL = 1.0e-6
#: pymatgen warnings quoted in the reason of an unreadable CIF.
_MAX_NOTES = 2


@dataclass(frozen=True)
class Limits:
    """Geometric limits of a valid structure (Å)."""

    min_distance: float = 0.5
    cutoff: float = 4.0


@dataclass(frozen=True)
class Row:
    """One input row: where it comes from (for messages), its id, κ and the structure source.

    ``missing`` is why the acquisition found no structure (from its manifest), empty otherwise.
    """

    where: str
    id: str
    kappa: object
    cif_path: Path | None = None
    structure_json: str | None = None
    missing: str = ""


@dataclass
class ValidationResult:
    """Kept records and rejected rows of one dataset."""

    dataset: str
    rows_in: int
    kept: list[dict[str, object]] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)

    def check_counts(self) -> None:
        """Raise unless every input row was either kept or rejected."""
        if self.rows_in != len(self.kept) + len(self.rejected):
            raise RuntimeError(
                f"{self.dataset}: {self.rows_in} rows in but {len(self.kept)} kept + "
                f"{len(self.rejected)} rejected"
            )


class InvalidRow(ValueError):
    """A row fails a check; the message is the rejection reason."""


def check_kappa(value: object) -> float:
    """κ as a float, or :class:`InvalidRow` unless it is a finite number > 0."""
    try:
        kappa = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidRow(f"κ {value!r} is not a number") from None
    if math.isnan(kappa):
        raise InvalidRow("κ is missing (NaN)")
    if not math.isfinite(kappa) or kappa <= 0:
        raise InvalidRow(f"κ = {kappa:g} W/mK is not finite and > 0")
    return kappa


def parse_cif(path: Path) -> Structure:
    """The single structure of a CIF file; pymatgen's parsing chatter is kept only for failures."""
    if not path.is_file():
        raise InvalidRow("CIF file not found")
    text = path.read_text(errors="replace")
    if not text.strip():
        raise InvalidRow("empty CIF file")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            structures = CifParser.from_str(text).parse_structures(primitive=False, on_error="raise")
        except Exception as error:  # noqa: BLE001 (pymatgen raises many types on malformed CIFs)
            notes = [str(warning.message) for warning in caught][:_MAX_NOTES]
            message = "; ".join([f"{type(error).__name__}: {error}", *notes])
            raise InvalidRow(f"unreadable CIF ({' '.join(message.split())})") from None
    if len(structures) != 1:
        raise InvalidRow(f"CIF holds {len(structures)} structures, expected 1")
    return structures[0]


def parse_structure_json(text: str | None) -> Structure:
    """A structure from ``Structure.as_dict()`` JSON; ``None`` means the id is not in Materials Project."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        raise InvalidRow("structure not found in Materials Project")
    try:
        return Structure.from_dict(json.loads(text))
    except Exception as error:  # noqa: BLE001 (malformed JSON or dict)
        raise InvalidRow(f"unreadable structure JSON ({type(error).__name__}: {error})") from None


#: Atomic number of every element symbol pymatgen knows.
_Z_OF_SYMBOL = {element.symbol: element.Z for element in Element}


def _plain_sites(data: dict[str, Any]) -> tuple[list[str], list[Any]] | None:
    """Element symbols and fractional coordinates of a ``Structure.as_dict()`` whose every site holds one
    known element at full occupancy; ``None`` for anything else."""
    symbols, coords = [], []
    for site in data["sites"]:
        species = site["species"]
        if len(species) != 1 or species[0].get("occu", 1) != 1 or species[0]["element"] not in _Z_OF_SYMBOL:
            return None
        symbols.append(species[0]["element"])
        coords.append(site["abc"])
    return symbols, coords


def structure_json_record(text: str | None) -> dict[str, object]:
    """The record (``STRUCTURE_SCHEMA`` structure columns) of ``Structure.as_dict()`` JSON.

    Ordered structures are read straight from the lattice matrix and the site list: pymatgen's
    ``Structure.from_dict`` builds some 60 objects per structure, most of a scan chunk's reading
    time. Anything else (partial occupancies, unknown symbols, odd dicts) goes through pymatgen.
    Raises :class:`InvalidRow` as :func:`parse_structure_json` does, or for a disordered structure.
    """
    try:
        data = json.loads(text)
        sites = _plain_sites(data)
        lattice = np.asarray(data["lattice"]["matrix"], dtype=float).reshape(-1)
        frac = np.asarray(sites[1], dtype=float).reshape(-1) if sites is not None else None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError):
        sites = None  # pymatgen parses it, or names what is wrong
    if sites is None or lattice.size != 9 or frac.size != 3 * len(sites[0]):
        return _ordered_record(parse_structure_json(text))
    symbols = sites[0]
    return {
        "formula": Composition(dict(Counter(symbols))).reduced_formula,
        "lattice": lattice.tolist(),
        "atomic_numbers": [_Z_OF_SYMBOL[symbol] for symbol in symbols],
        "frac_coords": frac.tolist(),
    }


def _ordered_record(structure: Structure) -> dict[str, object]:
    """The record of ``structure``; :class:`InvalidRow` if it is disordered or has a non-element species."""
    if len(structure) and not structure.is_ordered:
        raise InvalidRow("disordered structure (partial occupancies)")
    unknown = sorted({species.symbol for species in structure.species if isinstance(species, DummySpecies)})
    if unknown:
        raise InvalidRow(f"unknown element(s) {', '.join(unknown)} (not chemical elements)")
    return graphs.structure_to_record(structure)


def check_structure(structure: Structure, limits: Limits) -> None:
    """Raise :class:`InvalidRow` unless ``structure`` can become a MEGNet graph (checks 4-7)."""
    check_record(_ordered_record(structure), limits)


def check_record(record: dict[str, object], limits: Limits) -> None:
    """Raise :class:`InvalidRow` unless an ordered structure's record can become a MEGNet graph (checks 4-7)."""
    numbers = np.asarray(record["atomic_numbers"], dtype=np.int64)
    if len(numbers) == 0:
        raise InvalidRow("structure has no atoms")
    unsupported = sorted({Element.from_Z(int(z)).symbol for z in set(numbers.tolist()) - graphs.SUPPORTED_Z})
    if unsupported:
        raise InvalidRow(
            f"element(s) {', '.join(unsupported)} outside MEGNet's {len(graphs.ELEMENT_TYPES)} element types"
        )
    lattice = np.asarray(record["lattice"], dtype=float).reshape(3, 3)
    frac = np.asarray(record["frac_coords"], dtype=float).reshape(-1, 3)
    if not (np.isfinite(lattice).all() and np.isfinite(frac).all()):
        raise InvalidRow("non-finite lattice or coordinates")
    volume = abs(float(np.linalg.det(lattice)))
    if volume <= _FLAT_CELL * float(np.prod(np.linalg.norm(lattice, axis=1))):
        raise InvalidRow(f"degenerate cell (volume {volume:.3g} Å³)")
    src, dst, _, dist = graphs.neighbor_list(lattice, frac, limits.cutoff)

    def site(index: int) -> str:
        return f"{index} ({Element.from_Z(int(numbers[index])).symbol})"

    if len(dist) and dist.min() < limits.min_distance:
        k = int(dist.argmin())
        raise InvalidRow(
            f"overlapping atoms: sites {site(int(src[k]))} and {site(int(dst[k]))} "
            f"are {dist[k]:.3f} Å apart (< {limits.min_distance} Å)"
        )
    lonely = np.flatnonzero(np.bincount(src, minlength=len(numbers)) == 0)
    if len(lonely):
        raise InvalidRow(
            f"isolated atom: site {site(int(lonely[0]))} has no neighbour within "
            f"{limits.cutoff} Å ({len(lonely)} such site(s); they would get no graph edges)"
        )


def validate_row(row: Row, dataset: str, limits: Limits) -> tuple[dict[str, object] | None, str | None]:
    """(record, None) for a valid row, (None, reason) otherwise; never raises for bad data."""
    try:
        kappa = check_kappa(row.kappa)
        if row.missing:
            raise InvalidRow(row.missing)
        if row.cif_path is not None:
            structure = parse_cif(row.cif_path)
        else:
            structure = parse_structure_json(row.structure_json)
        check_structure(structure, limits)
    except InvalidRow as error:
        return None, f"{row.where}: {error}"
    except Exception as error:  # noqa: BLE001 (one odd structure must not stop the run)
        return None, f"{row.where}: unexpected error while checking ({type(error).__name__}: {error})"
    record = {"id": row.id, "dataset": dataset, "target": kappa, **graphs.structure_to_record(structure)}
    return record, None


def screen_ids(rows: Sequence[Row]) -> dict[int, str]:
    """Rejection reasons of the rows that fail on their id alone, by row index.

    A row without id; a later duplicate of an id whose rows all carry the same κ (the first is
    checked); every row of an id whose duplicates carry different κ (which one is right is unknown).
    """
    reasons: dict[int, str] = {}
    by_id: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        if row.id:
            by_id.setdefault(row.id, []).append(index)
        else:
            reasons[index] = f"{row.where}: missing id"
    for id_, indices in by_id.items():
        values = list(dict.fromkeys(_kappa_text(rows[index].kappa) for index in indices))
        if len(values) > 1:
            conflict = f"conflicting duplicates of id {id_}: κ = {' and '.join(values)} W/mK"
            reasons.update({index: f"{rows[index].where}: {conflict}" for index in indices})
            continue
        for index in indices[1:]:
            reasons[index] = f"{rows[index].where}: duplicate id {id_} (first at {rows[indices[0]].where})"
    return reasons


def _kappa_text(value: object) -> str:
    """κ as text for comparing duplicates: numbers by value (``5.0`` equals ``"5"``), anything else as is."""
    try:
        return str(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return repr(value)


def validate_rows(
    rows: Sequence[Row], dataset: str, limits: Limits, workers: int = 1, progress: bool = False
) -> ValidationResult:
    """Validate ``rows`` (in parallel when ``workers`` > 1); kept and rejected rows keep the input order."""
    outcomes: list[tuple[dict[str, object] | None, str | None]] = [(None, None)] * len(rows)
    id_reasons = screen_ids(rows)
    for index, reason in id_reasons.items():
        outcomes[index] = (None, reason)
    todo = [index for index in range(len(rows)) if index not in id_reasons]
    check = functools.partial(validate_row, dataset=dataset, limits=limits)
    chunksize = max(1, len(todo) // (16 * max(workers, 1)))
    bar = tqdm(total=len(todo), desc=f"validate {dataset}", unit="row", disable=not progress, mininterval=2.0)
    with bar, graphs.process_pool(workers) as pool:
        for index, outcome in zip(todo, pool.map(check, [rows[i] for i in todo], chunksize=chunksize)):
            outcomes[index] = outcome
            bar.update()
    result = ValidationResult(dataset=dataset, rows_in=len(rows))
    for row, (record, reason) in zip(rows, outcomes):
        if record is not None:
            result.kept.append(record)
        else:
            log.warning("%s: rejected %s: %s", dataset, row.id or "<no id>", reason)
            result.rejected.append({"dataset": dataset, "id": row.id, "reason": str(reason)})
    result.check_counts()
    log.info(
        "%s: %d rows in, %d kept, %d rejected",
        dataset,
        result.rows_in,
        len(result.kept),
        len(result.rejected),
    )
    return result


def _require_columns(frame: pd.DataFrame, columns: Iterable[str], source: Path) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{source}: missing columns {missing}; found {list(frame.columns)}")


def _id(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip()


def manifest_missing(manifest_csv: str | Path) -> dict[str, str]:
    """``{entry: reason}`` of the entries that an AFLOW acquisition manifest lists without CIF."""
    manifest_csv = Path(manifest_csv)
    manifest = pd.read_csv(manifest_csv, dtype=str, keep_default_na=False)
    _require_columns(manifest, MANIFEST_COLUMNS, manifest_csv)
    absent = manifest[manifest["sha256"] == ""]
    return dict(zip(absent["entry"], absent["missing"]))


def aflow_rows(
    labels_csv: str | Path, cif_dir: str | Path, manifest_csv: str | Path | None = None
) -> list[Row]:
    """Rows of the AFLOW label table; each entry's CIF is ``<cif_dir>/<entry>.cif``.

    With the acquisition manifest, an entry it lists without CIF carries its reason (and is rejected
    with it, whatever ``cif_dir`` holds).
    """
    labels_csv, cif_dir = Path(labels_csv), Path(cif_dir)
    labels = pd.read_csv(labels_csv, dtype={"entry": str})
    _require_columns(labels, AFLOW_COLUMNS, labels_csv)
    missing = manifest_missing(manifest_csv) if manifest_csv is not None else {}
    rows = []
    for line, (entry, kappa) in enumerate(
        zip(labels["entry"], labels["agl_thermal_conductivity_300K"]), start=2
    ):
        entry = _id(entry)
        cif = cif_dir / f"{entry}.cif"
        where = str(cif) if entry else f"{labels_csv} line {line}"
        rows.append(Row(where=where, id=entry, kappa=kappa, cif_path=cif, missing=missing.get(entry, "")))
    return rows


def mp_rows(table_path: str | Path) -> list[Row]:
    """Rows of a ``resources/mp/<dataset>.parquet`` table (structure JSON or null)."""
    table_path = Path(table_path)
    frame = pq.read_table(table_path).to_pandas()
    _require_columns(frame, MP_COLUMNS, table_path)
    return [
        Row(
            where=f"{table_path} row {i} ({_id(mp_id) or 'no id'})",
            id=_id(mp_id),
            kappa=kappa,
            structure_json=text,
        )
        for i, (mp_id, kappa, text) in enumerate(zip(frame["mp_id"], frame["ltc_wmk"], frame["structure"]))
    ]


def write_result(result: ValidationResult, structures: str | Path, rejected: str | Path) -> None:
    """Write kept rows (parquet, ``STRUCTURE_SCHEMA``) and rejected rows (CSV ``dataset, id, reason``)."""
    graphs.write_structure_table(result.kept, structures)
    Path(rejected).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(result.rejected, columns=REJECTED_COLUMNS).to_csv(rejected, index=False)


def gather_rejected(parts: Sequence[str | Path], output: str | Path) -> int:
    """Concatenate per-dataset rejection tables into one; number of rows."""
    frames = [pd.read_csv(part, dtype=str, keep_default_na=False) for part in parts]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=REJECTED_COLUMNS)
    table[REJECTED_COLUMNS].to_csv(output, index=False)
    return len(table)


def validate_file(
    dataset: str,
    source: str | Path,
    structures: str | Path,
    rejected: str | Path,
    limits: Limits,
    workers: int = 1,
    progress: bool = False,
    manifest: str | Path | None = None,
) -> ValidationResult:
    """Validate one dataset and write its kept and rejected rows.

    Args:
        dataset: ``"aflow"`` (``source`` is ``labels.csv``, the CIFs in ``cif/`` beside it) or an HQ
            dataset key (``source`` is ``resources/mp/<dataset>.parquet``).
        source: the input table.
        structures: output parquet of kept rows.
        rejected: output CSV of rejected rows.
        limits: geometric limits.
        workers: processes for the row checks.
        progress: show a progress bar.
        manifest: the AFLOW acquisition manifest (its entries without CIF are rejected with its reason).
    """
    source = Path(source)
    rows = aflow_rows(source, source.parent / "cif", manifest) if dataset == "aflow" else mp_rows(source)
    result = validate_rows(rows, dataset, limits, workers=workers, progress=progress)
    write_result(result, structures, rejected)
    return result
