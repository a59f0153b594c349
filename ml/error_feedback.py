"""What a party's encodings dropped (EF-SGD's residue), carried into its next update.

An encoding's residue is *pending* until its attempt ends. When a model is committed after it
(``settle``), the residue is what the next update carries, times the codec's
``feedback_decay``. When the attempt is voted down (``vote_down``), every validator trains afresh
from the same model (docs/protocol.md §3.2): the update was never applied and the next one trains
it again, so what its encoding dropped is carried decayed once more, times the decay squared.
Carried as after a commit, an update retrained at every new attempt added up to 1 / (1 - 0.8) =
5 times its round's training on the values it dropped, and such inflated top-k updates were
voted down in turn (a chain under IPM stalled for 24 of 30 rounds). Forgotten instead, every new
attempt sent the same values from the same stale residue, the same update voted down again
(stalls under IPM and the backdoor). Decayed once more, a retrained update weighs at most
1 / (1 - 0.64) = 2.8 times its training, and the values the voted-down one sent give way to
those it dropped, so that the new attempt is another update (bench/README.md, "Error feedback
across attempts").

The settled residue (one float32 value per trainable value) is kept in memory, or in a file
between rounds (``path``), so that a node holds no residue in memory while it trains and one,
the pending one, from its encoding until the commit; after a voted-down attempt the settled one
stays in memory too until the next commit writes it. Either is lost on a restart, which only
loses that residue.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from learnchain.ml.codec import StateDict
from learnchain.ml.errors import WeightsError
from learnchain.ml.update_codec import UpdateCodec
from learnchain.ml.weights_file import (
    StateSource,
    TensorSource,
    WeightsFile,
    WeightsLayout,
    iter_source,
    write_weights,
)

log = logging.getLogger("learnchain.ml")


class ErrorFeedback:
    """One party's residue: settled (carried by its next update) and pending (its last
    encoding's, until that attempt ends)."""

    def __init__(self, codec: UpdateCodec, path: Path | None = None) -> None:
        self.codec = codec
        self.path = path  # where the settled residue waits between rounds (None: in memory)
        self.residue: StateDict = {}  # the settled residue, when kept in memory
        self.pending: StateDict = {}
        # the share of the settled residue the next update carries, before the codec's decay:
        # the decay again after a voted-down attempt
        self.carried_share = 1.0
        self._layout: WeightsLayout | None = None  # the residue's, once a file holds it
        if path is not None:
            path.unlink(missing_ok=True)

    def encode(self, trained: TensorSource, base: TensorSource, layout: WeightsLayout) -> StateDict:
        """The encoded update from ``base`` to ``trained`` plus the settled residue, tensor by
        tensor; what this encoding dropped becomes the pending residue."""
        settled = self._open_settled()
        share = self.codec.feedback_decay * self.carried_share
        encoded: StateDict = {}
        pending: StateDict = {}
        for name, spec in layout.specs.items():
            # one float32 copy of the tensor at a time, which becomes its pending residue
            update = trained.read_flat(name, 0, spec.numel).to(torch.float32, copy=True)
            update -= base.read_flat(name, 0, spec.numel).to(torch.float32)
            if settled is not None:
                carried = settled.read_flat(name, 0, spec.numel)
                if share != 1.0:
                    carried = carried * share
                update += carried
                del carried
            entries = self.codec.encode_tensor(name, spec, update)
            encoded.update(entries)
            self.codec.subtract_decoded(update, entries, name, spec)
            pending[name] = update
        self.pending = pending
        return self.codec.pack(encoded, layout)

    def _open_settled(self) -> TensorSource | None:
        """The settled residue, or None when there is none."""
        if self.residue:
            return StateSource(self.residue)
        if self.path is None or self._layout is None:
            return None
        return WeightsFile(self.path, self._layout, self._layout.file_size)

    def settle(self) -> None:
        """The last encoding's attempt ended in a committed model: its residue is the one the
        next update carries (none encoded since the last settle: the settled one stays)."""
        pending, self.pending = self.pending, {}
        if not pending:
            return
        self.carried_share = 1.0
        if self.path is None:
            self.residue = pending
            return
        self.residue = {}
        layout = WeightsLayout.of_state(pending)  # float32, each tensor flat
        try:
            write_weights(self.path, layout, iter_source(StateSource(pending), layout))
        except (OSError, WeightsError) as error:  # a full disk: carried nothing, as on a restart
            log.warning("error feedback's residue not kept: %s", error)
            self.path.unlink(missing_ok=True)
            self._layout = None
            return
        self._layout = layout

    def vote_down(self) -> None:
        """The last encoding's attempt was voted down, to be trained again from the same model:
        its residue is settled, carried decayed once more (kept in memory, since this runs
        between the commit and the next training, until the next ``settle`` writes one)."""
        if not self.pending:
            return
        self.residue, self.pending = self.pending, {}
        self._layout = None  # a residue file is older than this one
        self.carried_share = self.codec.feedback_decay

    def discard(self) -> None:
        """The last encoding was never sent (its contribution not made): forgotten, as if it had
        not been made."""
        self.pending = {}
