"""The LevelDB store: atomic durable commits, weights files by content, migration from the format
that kept weights in LevelDB, and clear errors on bad files."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import plyvel
import pytest

from learnchain.consensus.crypto import compute_hash
from learnchain.consensus.events import SignState
from learnchain.consensus.types import Hash, Height, Round, Step
from learnchain.node.store.store import STORE_FORMAT, Store
from learnchain.node.store.store_error import StoreError
from learnchain.node.store.weights_store import READ_CHUNK_BYTES
from learnchain.proto.wire import block_to_proto, commit_to_proto, state_to_proto
from tests.consensus.chain import Chain, make_genesis_state, make_keys

KEYS = make_keys(4)


def test_blocks_commits_and_state_survive_a_reopen(tmp_path: Path) -> None:
    chain = Chain(make_genesis_state(KEYS), KEYS)
    with Store(tmp_path / "db") as store:
        store.save_state(chain.state)
        for _ in range(5):
            block = chain.next_block()
            state = chain.commit(block)
            assert chain.last_commit is not None
            store.save_block(block, chain.last_commit, state)
    with Store(tmp_path / "db") as store:
        loaded = store.load_state()
        assert loaded is not None and loaded.height == 5
        assert loaded.compute_root() == chain.state.compute_root()
        block5 = store.get_block(5)
        assert block5 is not None and store.get_height_of(block5.hash) == 5
        commit = store.get_commit(5)
        assert commit is not None and commit.block_hash == block5.hash
        assert store.get_block(6) is None
        assert len(list(store.iter_raw_blocks(1, 100))) == 5


def test_the_sign_state_survives_a_reopen(tmp_path: Path) -> None:
    sign_state = SignState(Height(3), Round(1), Step.PRECOMMIT, Round(1), compute_hash(b"v"))
    with Store(tmp_path / "db") as store:
        assert store.load_sign_state() is None
        store.save_sign_state(sign_state)
    with Store(tmp_path / "db") as store:
        assert store.load_sign_state() == sign_state


def test_a_corrupt_sign_state_is_a_store_error_naming_it(tmp_path: Path) -> None:
    with Store(tmp_path / "db") as store:
        store._db.put(b"p", b"\x0a\xff\xff\xff\xff\x0f garbage")
    with Store(tmp_path / "db") as store, pytest.raises(StoreError, match="the sign state"):
        store.load_sign_state()


def test_weights_are_files_named_by_their_hash_read_back_by_chunks(tmp_path: Path) -> None:
    data = os.urandom(READ_CHUNK_BYTES * 2 + 12345)
    weights_hash = compute_hash(data)
    with Store(tmp_path / "db") as store:
        path = store.weights.put(weights_hash, data)
        assert path == tmp_path / "weights" / f"{weights_hash.hex()}.safetensors"
        chunks = list(store.weights.iter_chunks(weights_hash))
        assert all(len(c) <= READ_CHUNK_BYTES for c in chunks)
        assert b"".join(chunks) == data
        assert store.weights.get_size(weights_hash) == len(data)
        assert list(store.weights.iter_chunks(Hash(bytes(32)))) == []


def test_pruning_keeps_only_the_retained_weights(tmp_path: Path) -> None:
    with Store(tmp_path / "db") as store:
        old, new = compute_hash(b"old"), compute_hash(b"new")
        store.weights.put(old, b"old weights")
        store.weights.put(new, b"new weights")
        assert store.weights.prune({new}) == 1
        assert not store.weights.has(old)
        assert b"".join(store.weights.iter_chunks(new)) == b"new weights"


def test_weights_left_half_written_by_a_crash_are_deleted_at_open(tmp_path: Path) -> None:
    with Store(tmp_path / "db") as store:
        leftover = store.weights.new_partial()
        leftover.write_bytes(b"half of some weights")
    with Store(tmp_path / "db"):
        assert not leftover.exists()


def unpack_format_1_fixture(folder: Path) -> Path:
    """The home of a one-validator chain of six blocks, written by the build before weights
    left LevelDB (store format 1, tests/fixtures/store_format_1.tar.gz); its path."""
    import tarfile

    with tarfile.open(Path(__file__).parent.parent / "fixtures" / "store_format_1.tar.gz") as tar:
        tar.extractall(folder, filter="data")
    return folder / "node0"


def test_a_store_of_format_1_moves_its_weights_into_files_and_keeps_its_chain(
    tmp_path: Path,
) -> None:
    from learnchain.ml.codec import compute_encoded_weights_hash, decode_weights
    from learnchain.ml.tasks import TaskConfig, get_task

    home = unpack_format_1_fixture(tmp_path)
    raw = plyvel.DB(str(home / "data" / "chain.db"))
    stored = [bytes(key[1:]) for key, _ in raw.iterator(prefix=b"w")]
    raw.close()
    assert len(stored) == 13
    with Store(home / "data" / "chain.db") as store:
        assert store.get_format() == STORE_FORMAT
        state = store.load_state()
        assert state is not None and state.height == 6
        assert all(store.get_block(h) is not None for h in range(1, 7)), "every block is kept"
        template = get_task(TaskConfig()).initial_model().state_dict()
        for weights_hash in stored:
            data = b"".join(store.weights.iter_chunks(Hash(weights_hash)))
            decode_weights(data, template, 1 << 30)
            assert compute_encoded_weights_hash(data, template, 1 << 30) == weights_hash
        assert store.weights.has(state.model_hash)
        assert not any(True for _ in store._db.iterator(prefix=b"k")), "no chunk left behind"


def test_the_recent_models_are_read_back_from_the_blocks(tmp_path: Path) -> None:
    chain = Chain(make_genesis_state(KEYS), KEYS)
    models = [compute_hash(f"model {i}".encode()) for i in range(4)]
    with Store(tmp_path / "db") as store:
        store.save_state(chain.state)
        for model in [models[0], models[1], models[1], models[2], models[3], models[3]]:
            block = chain.next_block(model_hash=model)
            state = chain.commit(block)
            assert chain.last_commit is not None
            store.save_block(block, chain.last_commit, state)
        assert store.get_recent_model_hashes(3) == models[1:]
        assert store.get_recent_model_hashes(10)[-4:] == models


def test_a_second_process_cannot_open_the_same_database(tmp_path: Path) -> None:
    with Store(tmp_path / "db"), pytest.raises(StoreError, match="cannot open the database"):
        Store(tmp_path / "db")


def write_blocks(path: Path, count: int) -> None:
    """A database holding ``count`` committed blocks."""
    chain = Chain(make_genesis_state(KEYS), KEYS)
    with Store(path) as store:
        for _ in range(count):
            block = chain.next_block()
            state = chain.commit(block)
            assert chain.last_commit is not None
            store.save_block(block, chain.last_commit, state)


def test_a_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    write_blocks(tmp_path / "db", 3)
    for path in (tmp_path / "db").iterdir():
        if path.suffix in (".ldb", ".log") or path.name.startswith("MANIFEST"):
            path.write_bytes(b"\x00garbage" * 64)
    with pytest.raises(StoreError, match=r"corrupt|cannot open"):
        Store(tmp_path / "db")


def test_a_corrupt_old_block_is_found_at_start_not_when_a_peer_asks_for_it(
    tmp_path: Path,
) -> None:
    write_blocks(tmp_path / "db", 40)
    Store(tmp_path / "db").close()  # the log becomes a table file, blocks from height 1 first
    (table,) = (tmp_path / "db").glob("*.ldb")
    data = bytearray(table.read_bytes())
    data[100:110] = b"\xff" * 10  # in the first data block: block 1, far from the latest
    table.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"stored chain is corrupt.*unsafe-reset-all --home"):
        Store(tmp_path / "db")


def test_a_block_missing_below_the_latest_is_found_at_start(tmp_path: Path) -> None:
    write_blocks(tmp_path / "db", 5)
    db = plyvel.DB(str(tmp_path / "db"))
    db.delete(b"b" + (3).to_bytes(8, "big"), sync=True)
    db.close()
    with pytest.raises(StoreError, match="block 3 is missing"):
        Store(tmp_path / "db")


def test_a_database_that_lost_its_current_file_is_refused_and_left_as_it_is(
    tmp_path: Path,
) -> None:
    """LevelDB would take it for a new database and delete every table file as obsolete."""
    write_blocks(tmp_path / "db", 3)
    (tmp_path / "db" / "CURRENT").unlink()

    def data_files() -> list[tuple[str, int]]:  # LevelDB's info LOG may rotate; data must not
        return sorted(
            (p.name, p.stat().st_size)
            for p in (tmp_path / "db").iterdir()
            if p.suffix in (".ldb", ".log") or p.name.startswith("MANIFEST")
        )

    before = data_files()
    with pytest.raises(StoreError, match=r"CURRENT file is missing\); restore it from a backup"):
        Store(tmp_path / "db")
    assert data_files() == before


WRITER = textwrap.dedent(
    """
    import sys
    from learnchain.node.store.store import Store
    from tests.consensus.chain import Chain, make_genesis_state, make_keys
    keys = make_keys(4)
    chain = Chain(make_genesis_state(keys), keys)
    store = Store(sys.argv[1])
    while True:
        block = chain.next_block()
        state = chain.commit(block)
        store.save_block(block, chain.last_commit, state)
        print(block.height, flush=True)
    """
)


def test_sigkill_at_any_moment_loses_no_committed_block(tmp_path: Path) -> None:
    for attempt in range(3):
        db = tmp_path / f"db{attempt}"
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert writer.stdout is not None
        acknowledged = 0
        deadline = time.monotonic() + 60
        while acknowledged < 20 + 7 * attempt and time.monotonic() < deadline:
            acknowledged = int(writer.stdout.readline())
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        with Store(db) as store:
            state = store.load_state()
            assert state is not None and state.height >= acknowledged
            for height in range(1, state.height + 1):
                block = store.get_block(height)
                commit = store.get_commit(height)
                assert block is not None and commit is not None and commit.block_hash == block.hash


def test_a_database_left_at_height_0_by_a_failed_start_takes_the_new_genesis(
    tmp_path: Path,
) -> None:
    first = make_genesis_state(KEYS)
    remade = make_genesis_state(KEYS, accounts=[(KEYS[0], 5)])  # genesis.json made again
    with Store(tmp_path / "db") as store:
        store.load_or_init_state(first)
    with Store(tmp_path / "db") as store:
        assert store.load_or_init_state(remade) == remade
    with Store(tmp_path / "db") as store:
        assert store.load_state() == remade


def test_a_new_database_records_the_store_format(tmp_path: Path) -> None:
    with Store(tmp_path / "db") as store:
        assert store.get_format() == STORE_FORMAT


def remove_format(path: Path) -> None:
    """Make ``path`` look like a chain stored before formats were recorded."""
    db = plyvel.DB(str(path))
    db.delete(b"v", sync=True)
    db.close()


def test_a_chain_stored_before_formats_were_recorded_is_refused_saying_what_to_do(
    tmp_path: Path,
) -> None:
    write_blocks(tmp_path / "db", 3)
    remove_format(tmp_path / "db")

    with pytest.raises(StoreError, match=r"older learnchain.*unsafe-reset-all"):
        Store(tmp_path / "db")

    with Store(tmp_path / "db", check=False) as store:  # refused, not upgraded or changed
        assert store.get_format() is None
        state = store.load_state()
        assert state is not None and state.height == 3


def test_a_chain_stored_by_a_newer_format_is_refused(tmp_path: Path) -> None:
    write_blocks(tmp_path / "db", 1)
    db = plyvel.DB(str(tmp_path / "db"))
    db.put(b"v", (STORE_FORMAT + 1).to_bytes(4, "big"), sync=True)
    db.close()
    with pytest.raises(StoreError, match=f"newer learnchain \\(format {STORE_FORMAT + 1}\\)"):
        Store(tmp_path / "db")


def test_the_stored_encoding_of_a_chain_is_pinned_to_the_store_format() -> None:
    """If this fails, what a node stores has changed: bump STORE_FORMAT (node/store/store.py), so
    that a node refuses, saying why, a database the previous build wrote, then update the digest."""
    chain = Chain(make_genesis_state(KEYS), KEYS)
    digest = hashlib.sha256(state_to_proto(chain.state).SerializeToString())
    for _ in range(3):
        block = chain.next_block()
        state = chain.commit(block)
        assert chain.last_commit is not None
        for message in (block_to_proto(block), commit_to_proto(chain.last_commit)):
            digest.update(message.SerializeToString())
        digest.update(state_to_proto(state).SerializeToString())
    assert (STORE_FORMAT, digest.hexdigest()) == (
        2,  # format 2 moved the weights out of LevelDB; the chain's bytes are those of format 1
        "488e754689bc2e7cc5316a85d9e700f6544b623c8aa29914b03801db9be5236c",
    )
