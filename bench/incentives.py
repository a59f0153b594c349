"""Incentives over many rounds: who earns, who pays (docs/protocol.md §3.5, §3.6).

Honest, lazy (no training: they contribute the current model) and poisoning (label-flipping)
parties learn together in aggregate mode, one process, with the node's own code: every party
contributes each round; the stake-selected proposer aggregates (a poisoning proposer proposes
its own weights); every party votes on its private vote set and the update commits when more
than the threshold of stake approves. On a committed update the proposer is paid at once and
every party appraises each contribution on its own data (ml/contribution_value.py; poisoners
report their own contributions as the best and the others as harmful); the chain's own
functions then appraise the block (``compute_appraisal``) and settle the contributors' share and
the deposits (``compute_settlement``). A proposal that more than the threshold of stake rejects
owes its proposer's deposit, settled with the next committed update's contributions (§3.6).

    .venv/bin/python bench/incentives.py --rounds 100 --honest 4 --lazy 1 --poisoners 1 --seeds 0-4

Prints each party's balance, bond, income as proposer, net gain as contributor (rewards and
forfeits received, minus every deposit it forfeited) and rejected proposals, a table by seed
and, last, one JSON line; exits non-zero if the tokens do not add up.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace
from typing import Any

import torch
from quality import parse_seeds

from learnchain.consensus.crypto import compute_hash
from learnchain.consensus.incentives import (
    compute_appraisal,
    compute_pending_share,
    compute_settlement,
)
from learnchain.consensus.messages import Commit, CommitSig
from learnchain.consensus.params import SCORE_UNIT, ChainParams
from learnchain.consensus.types import (
    Address,
    Height,
    PublicKey,
    Round,
    Signature,
    Stake,
    Threshold,
    Tokens,
    is_quorum,
)
from learnchain.consensus.validators import Validator, ValidatorSet, compute_incremented
from learnchain.ml.adversaries import make_learner
from learnchain.ml.aggregate import Contribution, aggregate_contributions
from learnchain.ml.config import APPRAISALS
from learnchain.ml.contribution_value import compute_contribution_values as appraise
from learnchain.ml.data import load_digits_party
from learnchain.ml.parties import propose_round
from learnchain.ml.tasks import TaskConfig, get_task
from learnchain.ml.training import evaluate_state

STAKE = 100
FORGED_VALUE = SCORE_UNIT  # what a poisoner reports: its own contributions best, others worst


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--honest", type=int, default=4)
    parser.add_argument("--lazy", type=int, default=1)
    parser.add_argument("--poisoners", type=int, default=1)
    parser.add_argument(
        "--copycats", type=int, default=0, help="free riders that send a copy of another's"
    )
    parser.add_argument(
        "--noisy-copycats", type=int, default=0, help="free riders that send a copy plus noise"
    )
    parser.add_argument("--seeds", default="0-4", help="e.g. 0-4 or 5,7")
    parser.add_argument("--partition", default="dirichlet:0.5")
    parser.add_argument("--block-reward", type=int, default=ChainParams().block_reward)
    parser.add_argument("--deposit", type=int, default=ChainParams().contribution_deposit)
    parser.add_argument("--forfeit-margin", type=int, default=ChainParams().forfeit_margin)
    parser.add_argument("--proposal-deposit", type=int, default=ChainParams().proposal_deposit)
    parser.add_argument("--threshold", default="2/3")
    parser.add_argument("--harm-margin", type=float, default=TaskConfig().harm_margin)
    parser.add_argument(
        "--duplicate-margin",
        type=float,
        default=TaskConfig().duplicate_margin,
        help="task.duplicate_margin: a copy of an earlier contribution is worth nothing (0: off)",
    )
    parser.add_argument(
        "--aggregation",
        default=TaskConfig().aggregation,
        help="the rule; with screened_mean the proposer's screening leaves contributions out, "
        "and the block lists them for the validators to appraise (§3.5)",
    )
    parser.add_argument(
        "--appraisal",
        choices=APPRAISALS,
        default=TaskConfig().appraisal,
        help="task.appraisal: each gain exact, or to first order from one gradient (§3.5)",
    )
    parser.add_argument("--trace", action="store_true", help="print each round's appraisal")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = [run(args, seed) for seed in parse_seeds(args.seeds)]
    kinds = sorted({kind for r in runs for kind in r["contribution_gain_by_kind"]})
    print(f"\n{'seed':>4} {'committed':>9} {'accuracy':>8}  contribution gain by kind")
    for r in runs:
        gains = "  ".join(f"{k} {r['contribution_gain_by_kind'][k]}" for k in kinds)
        print(f"{r['seed']:>4} {r['accepted']:>9} {r['final_accuracy']:>8.3f}  {gains}")
    summary = {
        "rounds": args.rounds,
        "seeds": [r["seed"] for r in runs],
        "parties": {
            "honest": args.honest,
            "lazy": args.lazy,
            "poisoner": args.poisoners,
            "copycat": args.copycats,
            "noisy_copycat": args.noisy_copycats,
        },
        "honest_all_grow": all(
            g > 0 for r in runs for g in r["contribution_gain_by_kind"].get("honest", [])
        ),
        "poisoners_all_shrink": all(
            g < 0 for r in runs for g in r["contribution_gain_by_kind"].get("poisoner", [])
        ),
        "lazy_gain_nothing": all(
            g == 0 for r in runs for g in r["contribution_gain_by_kind"].get("lazy", [])
        ),
        "tokens_conserved": all(r["tokens_conserved"] for r in runs),
        # what a free rider earns as a contributor, as a share of the mean honest party's
        "free_rider_share_of_honest": {
            kind: round(statistics.fmean(gains_of(runs, kind)) / honest_mean, 4)
            for kind in ("lazy", "copycat", "noisy_copycat")
            if gains_of(runs, kind) and (honest_mean := statistics.fmean(gains_of(runs, "honest")))
        },
        "runs": runs,
    }
    print(json.dumps(summary))
    if not summary["tokens_conserved"]:
        raise SystemExit(1)


def gains_of(runs: list[dict[str, Any]], kind: str) -> list[int]:
    """Every party of ``kind``'s net gain as a contributor, over ``runs``."""
    return [g for r in runs for g in r["contribution_gain_by_kind"].get(kind, [])]


def run(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """One chain of ``args.rounds`` rounds; its figures."""
    torch.manual_seed(seed)
    params = replace(
        ChainParams(),
        block_reward=Tokens(args.block_reward),
        contribution_deposit=Tokens(args.deposit),
        forfeit_margin=args.forfeit_margin,
        proposal_deposit=Tokens(args.proposal_deposit),
    )
    threshold = Threshold.parse(args.threshold)
    kinds: list[str | None] = (
        [None] * args.honest
        + ["lazy"] * args.lazy
        + ["label_flip"] * args.poisoners
        + ["copycat"] * args.copycats
        + ["noisy_copycat"] * args.noisy_copycats
    )
    names = [{None: "honest", "label_flip": "poisoner"}.get(k, str(k)) for k in kinds]
    count = len(kinds)
    loaded = [load_digits_party(i, count, args.partition, seed) for i in range(count)]
    parties, test = [data for data, _ in loaded], loaded[0][1]
    config = TaskConfig(aggregation=args.aggregation)
    task = get_task(replace(config, seed=seed))
    learners = [
        make_learner(task, data, seed * 100 + i, kind)
        for i, (data, kind) in enumerate(zip(parties, kinds, strict=True))
    ]
    addresses = [Address(compute_hash(bytes([i]))[:20]) for i in range(count)]
    validators = ValidatorSet.from_genesis(
        Validator(a, PublicKey(bytes([i]) * 32), Stake(STAKE)) for i, a in enumerate(addresses)
    )
    index_of = {a: i for i, a in enumerate(addresses)}
    balances = dict.fromkeys(addresses, 0)
    bonds = dict.fromkeys(addresses, STAKE)
    earned = dict.fromkeys(addresses, 0)  # rewards and forfeits received, minus own deposits
    initial = sum(bonds.values())
    rejections = dict.fromkeys(addresses, 0)  # rejected proposals whose deposit was owed
    rejected: list[Address] = []  # proposers rejected since the last committed update
    minted = burned = forfeited = accepted = 0
    previous_global: dict[str, torch.Tensor] | None = None
    for round_index in range(args.rounds):
        proposer = index_of[validators.proposer]
        validators = compute_incremented(validators, times=1)
        contributions = [
            Contribution(str(i), state, learners[i].samples)
            for i, state in propose_round(learners).items()
        ]
        screened: list[Contribution] = []
        if kinds[proposer] == "label_flip":  # proposes its own weights as the aggregate
            candidate = contributions[proposer].state
            used = [contributions[proposer]]
        else:
            candidate, used_ids = aggregate_contributions(
                learners[proposer].current(),
                contributions,
                config.aggregation,
                learners[proposer].score,
                config.screen_margin,
                momentum=config.server_momentum,
                previous_global=previous_global,
                learning_rate=config.server_learning_rate,
            )
            used = [c for c in contributions if c.contributor in used_ids]
            screened = [c for c in contributions if c.contributor not in used_ids]
        poisoned = kinds[proposer] == "label_flip"
        # a verified aggregate of a quorum's contributions is judged by the looser margin (§3.7)
        verified = not poisoned and is_quorum(STAKE * len(used), STAKE * count, threshold)
        margin = config.verified_margin if verified else None
        approving = sum(
            STAKE
            for i, learner in enumerate(learners)
            if (poisoned if kinds[i] == "label_flip" else learner.vote(candidate, margin).approve)
        )
        if not is_quorum(approving, STAKE * count, threshold):
            # Every party votes with a verdict, so whoever does not approve rejects (§3.6).
            if is_quorum(STAKE * count - approving, STAKE * count, threshold):
                rejected.append(addresses[proposer])
            previous_global = None  # as a node: the next attempt aggregates without momentum
            continue
        accepted += 1
        contributors = tuple(addresses[int(c.contributor)] for c in used)
        proposer_share, pending = compute_pending_share(
            params,
            Height(round_index),
            contributors,
            tuple(addresses[int(c.contributor)] for c in screened),
        )
        balances[addresses[proposer]] += proposer_share
        minted += proposer_share
        if pending is not None:
            # The height's rejected proposals forfeit their deposits at the settlement (§3.6).
            pending = replace(pending, rejected=tuple(rejected))
            for address in rejected:
                rejections[address] += 1
            rejected = []
            reports = []
            for i, learner in enumerate(learners):
                if kinds[i] == "label_flip":
                    values = tuple(
                        FORGED_VALUE if kinds[int(c.contributor)] == "label_flip" else -FORGED_VALUE
                        for c in (*used, *screened)
                    )
                else:
                    values = tuple(
                        round(v * SCORE_UNIT)
                        for v in appraise(
                            learner.current(),
                            used,
                            learner.loss,
                            learner.score,
                            args.harm_margin,
                            screened,
                            # gossip brings the honest contributions first (the copycats', made
                            # from them, later): party order is arrival order here
                            arrival=[float(c.contributor) for c in (*used, *screened)],
                            duplicate_margin=args.duplicate_margin,
                            gradient=learner.loss_gradient
                            if args.appraisal == "first_order"
                            else None,
                        )
                    )
                reports.append(CommitSig(addresses[i], Signature(b""), None, values=values))
            commit = Commit(Height(round_index), Round(0), compute_hash(b"block"), tuple(reports))
            appraisal = compute_appraisal(commit, validators, len(pending.judged), params)
            settlement = compute_settlement(pending, appraisal, bonds, params)
            if args.trace and appraisal is not None:
                shown = ", ".join(
                    f"{names[int(c.contributor)]} {v / SCORE_UNIT:+.4f}{' harmful' * h}"
                    for c, v, h in zip(
                        (*used, *screened), appraisal.values, appraisal.harmful, strict=True
                    )
                )
                print(f"  round {round_index}: {shown}")
            for address, amount in settlement.forfeits.items():
                bonds[address] -= amount
                earned[address] -= amount
            for address, amount in (*settlement.rewards.items(), *settlement.transfers.items()):
                balances[address] += amount
                earned[address] += amount
            minted += settlement.minted
            burned += settlement.burned
            forfeited += sum(settlement.forfeits.values())
        previous_global = learners[0].current()
        for learner in learners:
            learner.accept(candidate)
    total = sum(balances.values()) + sum(bonds.values())
    conserved = total == initial + minted - burned
    accuracy = evaluate_state(task, learners[0].current(), test).accuracy
    by_kind: dict[str, list[int]] = {}
    lost_by_kind: dict[str, list[int]] = {}
    net_by_kind: dict[str, list[int]] = {}
    header = f"{'party':<6} {'kind':<9} {'balance':>8} {'bond':>6} {'as proposer':>11}"
    print(f"seed {seed}: {header} {'as contributor':>14} {'rejected proposals':>18}")
    for i, address in enumerate(addresses):
        by_kind.setdefault(names[i], []).append(earned[address])
        lost_by_kind.setdefault(names[i], []).append(rejections[address])
        net = balances[address] + bonds[address] - STAKE
        net_by_kind.setdefault(names[i], []).append(net)
        proposing = net - earned[address]  # its proposer shares
        print(
            f"        {i:<6} {names[i]:<9} {balances[address]:>8} {bonds[address]:>6} "
            f"{proposing:>11} {earned[address]:>14} {rejections[address]:>18}"
        )
    print(
        f"        {accepted} of {args.rounds} rounds committed; final accuracy {accuracy:.3f}; "
        f"minted {minted}, forfeited {forfeited}, burned {burned}; tokens add up: {conserved}"
    )
    return {
        "seed": seed,
        "accepted": accepted,
        "final_accuracy": round(accuracy, 4),
        "contribution_gain_by_kind": by_kind,
        "rejected_proposals_by_kind": lost_by_kind,
        "net_gain_by_kind": net_by_kind,
        "minted": minted,
        "forfeited": forfeited,
        "burned": burned,
        "tokens_conserved": conserved,
    }


if __name__ == "__main__":
    main()
