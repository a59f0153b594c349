"""Deposits on rejected model updates (docs/protocol.md §3.6).

A validator whose learner rejects a first-time proposal of a model update prevotes nil and names
the proposal's block hash in that prevote (``Vote.rejects``). When such prevotes from more than
the chain's threshold of stake reach a later proposer of the same height, it includes a
``RejectedProposal``: the rejected proposal, signed by its proposer, and those prevotes. The
rejected proposer forfeits ``proposal_deposit`` from its bond to the update the height accepted:
in aggregate mode at the contributors' settlement, by value (``compute_settlement``); in solo
mode to its proposer at once (``compute_forfeit``); when the height keeps the model, it is burned.

A proof is valid only in the block of its own height, so the validator set that voted is the
state's and a round's proposal is proven at most once (one proof per round in one block).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from learnchain.consensus.crypto import SignatureVerifier
from learnchain.consensus.incentives import compute_forfeits
from learnchain.consensus.messages import (
    Proposal,
    RejectedProposal,
    SignedProposal,
    SignedVote,
)
from learnchain.consensus.params import ChainParams
from learnchain.consensus.types import (
    NIL_ROUND,
    Address,
    ChainId,
    Height,
    Round,
    Signature,
    VoteType,
    is_quorum,
)
from learnchain.consensus.validators import ValidatorSet, compute_proposer_of_round


class InvalidRejection(ValueError):
    """A rejection proof that proves nothing."""


@dataclass(frozen=True, slots=True)
class Forfeit:
    """What a block's rejection proofs move: deposits taken from bonds and where they go."""

    taken: dict[Address, int]  # from bonds
    paid: dict[Address, int]  # into accounts
    burned: int


def is_rejecting_prevote(signed: SignedVote, proposal: Proposal) -> bool:
    """True when ``signed`` is a nil prevote of the proposal's height and round naming its block."""
    vote = signed.vote
    return (
        vote.chain_id == proposal.chain_id
        and vote.vote_type == VoteType.PREVOTE
        and vote.height == proposal.height
        and vote.round == proposal.round
        and vote.block_hash is None
        and vote.rejects == proposal.block_hash
    )


def get_rejected_proposer(
    rejection: RejectedProposal,
    chain_id: ChainId,
    height: Height,
    validators: ValidatorSet,
    params: ChainParams,
    verifier: SignatureVerifier,
) -> Address:
    """The proposer that ``rejection`` proves the vote rejected at ``height`` (the set that
    voted: ``validators``), or InvalidRejection."""
    proposal = rejection.proposal
    if proposal.chain_id != chain_id:
        raise InvalidRejection("rejection proof is from another chain")
    if proposal.height != height:
        raise InvalidRejection(
            f"rejection proof is for height {proposal.height}, not this block's {height}"
        )
    if proposal.round < 0 or proposal.valid_round != NIL_ROUND:
        raise InvalidRejection("only a first-time proposal (valid round -1) can be rejected")
    proposer = compute_proposer_of_round(validators, proposal.round)
    validator = validators.get_validator(proposer)
    if validator is None or not verifier.is_valid(
        validator.public_key, proposal.sign_bytes(), rejection.signature
    ):
        raise InvalidRejection("rejected proposal is not signed by its round's proposer")
    power = 0
    seen: set[Address] = set()
    for signed in rejection.prevotes:
        voter = validators.get_validator(signed.vote.validator)
        if voter is None or signed.vote.validator in seen:
            raise InvalidRejection("rejecting prevote from a non-validator or listed twice")
        if not is_rejecting_prevote(signed, proposal):
            raise InvalidRejection("a prevote in the proof does not reject the proposal")
        if not verifier.is_valid(voter.public_key, signed.vote.sign_bytes(), signed.signature):
            raise InvalidRejection("rejecting prevote has an invalid signature")
        seen.add(signed.vote.validator)
        power += voter.power
    if not is_quorum(power, validators.total_power, params.threshold):
        raise InvalidRejection("rejecting prevotes do not hold more than the threshold of stake")
    return proposer


def compute_forfeit(
    proposers: Iterable[Address],
    bonded: Mapping[Address, int],
    deposit: int,
    model_changed: bool,
    block_proposer: Address,
    contributors: Iterable[Address],
) -> Forfeit:
    """Take ``deposit`` (at most what is bonded) from each rejected proposer and pay it to the
    accepted update's contributors in equal parts (when their share is not settled by value:
    no block reward), or to its proposer when it has none; burn it when the block keeps the
    model. Rejected proposers are paid nothing."""
    taken = compute_forfeits([(p, deposit) for p in proposers], bonded)
    total = sum(taken.values())
    if not model_changed:
        return Forfeit(taken, {}, total)
    payees = sorted(set(contributors) or {block_proposer})
    payees = [p for p in payees if p not in taken]
    if not payees:
        return Forfeit(taken, {}, total)
    share = total // len(payees)
    paid = {p: share for p in payees} if share else {}
    return Forfeit(taken, paid, total - share * len(payees))


def compute_rejection_proofs(
    chain_id: ChainId,
    proposals: Mapping[Round, SignedProposal],
    prevotes: Mapping[Round, Iterable[SignedVote]],
    validators: ValidatorSet,
    params: ChainParams,
    before_round: Round,
) -> tuple[RejectedProposal, ...]:
    """The proofs a proposer at ``before_round`` can include: every earlier first-time
    proposal of the height whose rejecting prevotes hold more than the threshold of stake."""
    proofs: list[RejectedProposal] = []
    for round_ in sorted(proposals):
        signed = proposals[round_]
        proposal = signed.proposal
        if round_ >= before_round or proposal.valid_round != NIL_ROUND:
            continue
        if proposal.chain_id != chain_id:
            continue
        rejecting = sorted(
            (v for v in prevotes.get(round_, ()) if is_rejecting_prevote(v, proposal)),
            key=lambda v: v.vote.validator,
        )
        if validators.is_quorum_of((v.vote.validator for v in rejecting), params.threshold):
            proofs.append(RejectedProposal(proposal, Signature(signed.signature), tuple(rejecting)))
    return tuple(proofs)
