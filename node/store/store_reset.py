"""``learnchain unsafe-reset-all``: start a node's chain over, keeping what keeps it safe.

Like CometBFT's command of the same name, it deletes the stored chain so that the node syncs it
again from its peers. Unlike it, the double-sign guard (the last height, round and step this
validator signed) is carried over when it can be read, even from a damaged database (LevelDB's
repair is tried on a copy), so a reset validator still never signs twice at a height it signed.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import plyvel

from learnchain.consensus.events import SignState
from learnchain.node.home.files import DATA_DIR
from learnchain.node.store.store import Store
from learnchain.node.store.store_error import StoreError
from learnchain.node.store.weights_store import WEIGHTS_DIR

DATABASE = "chain.db"


def read_sign_state(path: Path) -> SignState | None:
    """The sign state in the database at ``path``; from a repaired copy when it does not open;
    None when there is none or it cannot be read."""
    try:
        with Store(path, check=False) as store:
            return store.load_sign_state()
    except (StoreError, plyvel.Error):
        pass
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / DATABASE
        shutil.copytree(path, copy)
        try:
            plyvel.repair_db(str(copy))
            with Store(copy, check=False) as store:
                return store.load_sign_state()
        except (StoreError, plyvel.Error):
            return None


def reset_chain(home: Path) -> tuple[bool, SignState | None]:
    """Delete ``home``'s stored chain and weights, keeping the sign state; (whether there was a
    database, the sign state kept)."""
    path = home / DATA_DIR / DATABASE
    if not path.exists():
        return False, None
    sign_state = read_sign_state(path)
    shutil.rmtree(path)
    shutil.rmtree(path.parent / WEIGHTS_DIR, ignore_errors=True)
    if sign_state is not None:
        with Store(path) as store:
            store.save_sign_state(sign_state)
    return True, sign_state
