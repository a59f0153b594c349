"""Error feedback (ml/error_feedback.py): each update carries what the encodings before it
dropped (whole, or for top-k decayed) once a model was committed after them, and once more
decayed after a voted-down attempt; an encoding never sent is forgotten; the residue kept in a
file gives, to the bit, the updates it gives in memory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from learnchain.ml.error_feedback import ErrorFeedback
from learnchain.ml.update_codec import DecodedContribution, parse_codec
from learnchain.ml.weights_file import StateSource, WeightsLayout
from tests.ml.states import make_state

CODECS = ("bfloat16", "int8", "topk:0.01")


BASE = make_state(0)
LAYOUT = WeightsLayout.of_state(BASE)


def make_trained(seed: int) -> StateSource:
    """A training's result: the base moved by a small step of its own."""
    step = make_state(seed, 0.01)
    return StateSource({k: BASE[k] + step[k] for k in BASE})


def make_feedback(name: str, where: str, tmp_path: Path) -> ErrorFeedback:
    """Error feedback for codec ``name``, its residue kept in ``where`` ("memory" or "file")."""
    path = tmp_path / "residue.safetensors" if where == "file" else None
    return ErrorFeedback(parse_codec(name), path)


def encode(feedback: ErrorFeedback, seed: int) -> dict[str, torch.Tensor]:
    return feedback.encode(make_trained(seed), StateSource(BASE), LAYOUT)


@pytest.mark.parametrize("name", CODECS)
def test_each_update_carries_what_the_last_encoding_dropped_times_the_codecs_decay(
    name: str,
) -> None:
    codec = parse_codec(name)
    feedback = ErrorFeedback(codec)
    wanted = {k: torch.zeros_like(v) for k, v in BASE.items()}
    sent = {k: torch.zeros_like(v) for k, v in BASE.items()}
    held = {k: torch.zeros(v.numel()) for k, v in BASE.items()}
    for round_ in range(30):
        entries = encode(feedback, 100 + round_)
        feedback.settle()
        decoded = DecodedContribution(StateSource(BASE), StateSource(entries), codec, LAYOUT)
        step = make_state(100 + round_, 0.01)
        for key, spec in LAYOUT.specs.items():
            this_round = decoded.read_flat(key, 0, spec.numel) - BASE[key].flatten()
            carried = step[key].flatten() + codec.feedback_decay * held[key]
            assert torch.allclose(this_round + feedback.residue[key], carried, atol=1e-5)
            held[key] = feedback.residue[key].clone()
            wanted[key] += step[key]
            sent[key] += this_round.reshape(spec.shape)
    if codec.feedback_decay == 1.0:  # what was sent plus what is still held is what was trained
        for key in BASE:
            assert torch.allclose(
                sent[key] + feedback.residue[key].reshape(sent[key].shape), wanted[key], atol=1e-4
            )
    else:  # top-k: the residue decays, so it stays well under what was trained
        total = sum(float(wanted[k].abs().sum()) for k in BASE)
        left = sum(float(feedback.residue[k].abs().sum()) for k in BASE)
        assert left < total / 2


def read_settled(feedback: ErrorFeedback) -> dict[str, torch.Tensor]:
    """The settled residue as it stands (flat float32 tensors), zeros when there is none."""
    settled = feedback._open_settled()
    return {
        k: torch.zeros(v.numel()) if settled is None else settled.read_flat(k, 0, v.numel()).clone()
        for k, v in BASE.items()
    }


@pytest.mark.parametrize("where", ["memory", "file"])
@pytest.mark.parametrize("name", CODECS)
def test_after_a_voted_down_attempt_an_update_carries_its_residue_decayed_once_more(
    name: str, where: str, tmp_path: Path
) -> None:
    """The voted-down update is trained again: what its encoding dropped is carried times the
    decay squared, and a commit after the new attempt carries the new one's once again."""
    feedback = make_feedback(name, where, tmp_path)
    codec = feedback.codec
    encode(feedback, 1)
    feedback.settle()
    owed, share = read_settled(feedback), codec.feedback_decay
    for seed, then in ((2, "vote_down"), (3, "vote_down"), (4, "settle"), (5, "settle")):
        entries = encode(feedback, seed)
        decoded = DecodedContribution(StateSource(BASE), StateSource(entries), codec, LAYOUT)
        step = make_state(seed, 0.01)
        for key, spec in LAYOUT.specs.items():
            this_round = decoded.read_flat(key, 0, spec.numel) - BASE[key].flatten()
            carried = step[key].flatten() + share * owed[key]
            assert torch.allclose(this_round + feedback.pending[key], carried, atol=1e-5)
        owed = {k: v.clone() for k, v in feedback.pending.items()}
        getattr(feedback, then)()
        share = codec.feedback_decay ** (2 if then == "vote_down" else 1)
        assert all(torch.equal(read_settled(feedback)[k], owed[k]) for k in BASE)


@pytest.mark.parametrize("where", ["memory", "file"])
@pytest.mark.parametrize("name", ["bfloat16", "int8"])
def test_with_a_codec_whose_residue_does_not_decay_a_voted_down_one_is_carried_as_committed(
    name: str, where: str, tmp_path: Path
) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    voted_down = make_feedback(name, where, tmp_path / "a")
    committed = make_feedback(name, where, tmp_path / "b")
    for feedback in (voted_down, committed):
        encode(feedback, 1)
        feedback.settle()
        encode(feedback, 2)
    voted_down.vote_down()
    committed.settle()
    retrained, plain = encode(voted_down, 3), encode(committed, 3)
    assert all(torch.equal(retrained[k], plain[k]) for k in plain)


def test_a_vote_down_with_nothing_encoded_since_the_commit_changes_nothing(tmp_path: Path) -> None:
    feedback = make_feedback("topk:0.01", "file", tmp_path)
    encode(feedback, 1)
    feedback.settle()
    before = read_settled(feedback)
    feedback.vote_down()  # e.g. this node made no contribution to the attempt
    assert feedback.carried_share == 1.0
    assert all(torch.equal(read_settled(feedback)[k], before[k]) for k in BASE)


@pytest.mark.parametrize("name", CODECS)
def test_an_encoding_never_sent_is_forgotten_as_if_not_made(name: str) -> None:
    unsent, never = ErrorFeedback(parse_codec(name)), ErrorFeedback(parse_codec(name))
    for feedback in (unsent, never):
        encode(feedback, 1)
        feedback.settle()
    encode(unsent, 2)
    unsent.discard()  # e.g. the disk refused its file
    unsent.settle()
    after, plain = encode(unsent, 3), encode(never, 3)
    assert all(torch.equal(after[k], plain[k]) for k in plain)


@pytest.mark.parametrize("name", CODECS)
def test_the_residue_kept_in_a_file_gives_the_updates_it_gives_in_memory(
    name: str, tmp_path: Path
) -> None:
    in_file = make_feedback(name, "file", tmp_path)
    in_memory = make_feedback(name, "memory", tmp_path)
    for round_ in range(4):
        from_file, from_memory = encode(in_file, round_), encode(in_memory, round_)
        assert all(torch.equal(from_file[k], from_memory[k]) for k in from_memory)
        for feedback in (in_file, in_memory):
            feedback.settle()
        assert in_file.pending == {} and in_file.residue == {}  # between rounds: on disk only
        assert (tmp_path / "residue.safetensors").exists()


def test_a_residue_that_cannot_be_written_is_dropped_and_the_next_update_carries_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    unwritable = ErrorFeedback(parse_codec("topk:0.01"), tmp_path / "missing" / "r.safetensors")
    fresh = ErrorFeedback(parse_codec("topk:0.01"))
    encode(unwritable, 1)
    unwritable.settle()
    assert "residue not kept" in caplog.text
    after, alone = encode(unwritable, 2), encode(fresh, 2)
    assert all(torch.equal(after[k], alone[k]) for k in alone)


def test_a_residue_left_from_an_earlier_run_is_not_carried(tmp_path: Path) -> None:
    path = tmp_path / "residue.safetensors"
    first = ErrorFeedback(parse_codec("int8"), path)
    encode(first, 1)
    first.settle()
    assert path.exists()
    restarted = ErrorFeedback(parse_codec("int8"), path)
    assert not path.exists()
    after, alone = encode(restarted, 2), encode(ErrorFeedback(parse_codec("int8")), 2)
    assert all(torch.equal(after[k], alone[k]) for k in alone)
