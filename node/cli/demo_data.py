"""What ``learnchain demo`` trains on and is measured against: the built-in digits shards, or an
operator's own files (one per validator), each with a held-out test set and the parties' own
training parts for the comparison with each party alone and all data pooled."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from learnchain.ml.data import (
    Dataset,
    PartyData,
    align_columns,
    load_digits_party,
    load_digits_pool,
    read_data_file,
    split_test,
    split_train_vote,
)

FILE_SPLIT_SEED = 0  # a node splits its file into training and vote parts with this seed


@dataclass(frozen=True)
class DemoData:
    """The testnet's data options, the held-out test set, and what each party trains on."""

    testnet_args: tuple[str, ...]
    test: Dataset
    parties: list[PartyData]
    description: str


def prepare_digits(validators: int, partition: str, seed: int) -> DemoData:
    """Non-IID shards of scikit-learn's digits, one per validator, and the shared test set."""
    _, test = load_digits_pool(seed)
    parties = [load_digits_party(i, validators, partition, seed)[0] for i in range(validators)]
    return DemoData(("--partition", partition, "--seed", str(seed)), test, parties, partition)


def prepare_files(files: list[Path], label_column: str, folder: Path, seed: int) -> DemoData:
    """Each file (a party's own data) less a held-out fifth, written to ``folder`` as the file
    its validator trains on; the held-out fifths pooled are the test set. DataError (one line)
    for a file that cannot be read or whose columns differ from the first's."""
    first = read_data_file(files[0], label_column)
    kept: list[Path] = []
    held_out: list[Dataset] = []
    parties: list[PartyData] = []
    folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(files):
        data = align_columns(
            path, read_data_file(path, label_column), first.feature_names, str(files[0])
        )
        rest, test = split_test(data, seed)
        held_out.append(test)
        parties.append(split_train_vote(rest, FILE_SPLIT_SEED))
        target = folder / f"party{i}.npz"
        if data.feature_names:
            np.savez(target, x=rest.x, y=rest.y, feature_names=np.asarray(data.feature_names))
        else:
            np.savez(target, x=rest.x, y=rest.y)
        kept.append(target)
    test = Dataset(np.concatenate([t.x for t in held_out]), np.concatenate([t.y for t in held_out]))
    return DemoData(
        ("--data-files", ",".join(str(p) for p in kept), "--seed", str(seed)),
        test,
        parties,
        f"{len(files)} data files",
    )
