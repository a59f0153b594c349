"""Learning quality of the protocol: N parties, rounds of propose -> vote -> accept.

One process, the same ml/ code a node uses, and the consensus rule: an update commits when the
stake approving it (each party running its vote rule on its own private vote set) is strictly
more than the threshold. Proposers follow consensus.validators' stake-weighted selection.
Accuracy is always on a held-out test set that no party trains or votes on.

    .venv/bin/python bench/quality.py --parties 5 --task digits-mlp --partition dirichlet:0.5 \
        --rounds 30 --seeds 0-4 --mode aggregate --threshold 2/3 [--byzantine label_flip:1]

With ``--data-file FILE [--label-column C]`` (CSV or NPZ) the parties split the user's own data
instead of digits (a fifth held out for the test), with tabular-mlp voting by loss by default and
the shape and feature statistics taken from the data, as ``learnchain testnet --data-files``
would.

Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from learnchain.consensus.reputation import (
    Reputation,
    compute_next_reputations,
    compute_reputation_exclusions,
    compute_typical_magnitude,
)
from learnchain.consensus.types import Address, PublicKey, Stake, Threshold, is_quorum
from learnchain.consensus.validators import Validator, ValidatorSet, compute_incremented
from learnchain.ml.adversaries import (
    ATTACKS,
    BACKDOOR_TARGET,
    POISONING_ATTACKS,
    ByzantineLearner,
    compute_attack_listing,
    compute_triggered_test,
)
from learnchain.ml.aggregate import Contribution, aggregate_contributions, compute_update_norms
from learnchain.ml.baselines import (
    LOCAL_ONLY_EPOCHS,
    POOLED_EPOCHS,
    compute_local_only_accuracies,
    compute_pooled_model,
)
from learnchain.ml.codec import decode_weights, encode_weights
from learnchain.ml.data import (
    Dataset,
)
from learnchain.ml.error_feedback import ErrorFeedback
from learnchain.ml.errors import MLError, PrivacyBudgetExceeded, WeightsError
from learnchain.ml.learner import Learner
from learnchain.ml.parties import (
    compute_default_trial_config,
    load_trial_data,
    make_party_data,
    make_party_learners,
    propose_round,
)
from learnchain.ml.plots import AccuracyCurves, draw_accuracy
from learnchain.ml.privacy import compute_dp_steps
from learnchain.ml.tasks import TaskConfig, get_task
from learnchain.ml.training import evaluate_state
from learnchain.ml.update_codec import (
    DecodedContribution,
    UpdateCodec,
    parse_codec,
)
from learnchain.ml.weights_file import StateSource, WeightsLayout, collect_state, iter_source


@dataclass
class Trial:
    seed: int
    final_accuracy: float
    local_only_best: float
    pooled_accuracy: float
    accepted: int
    rejected: int
    byzantine_accepted: int
    worst_accepted_drop: float
    seconds_per_round: float
    ml_cpu_seconds_per_party_round: float
    epsilon_spent: float | None
    noise: float
    curves: AccuracyCurves
    attack_success_rate: float | None  # backdoor: triggered test inputs sent to the target
    # backdoor: the same rate for the pooled model, which no one poisoned: what the trigger
    # reaches on its own (features at their maximum can be evidence for the target class)
    trigger_natural_rate: float | None
    round_bytes: dict[str, int]  # what a contribution weighs, and a validator receives a round
    # rounds in which each honest party's contribution was left out by reputation
    honest_left_out: list[int]
    attackers_left_out: int  # attacker contributions left out by reputation


FORGED_VALUE = 0.1  # what a poisoner reports: +this for its colluders, -this for the others


def party_address(index: int) -> Address:
    """Party ``index``'s validator address in a trial."""
    return Address(bytes([index]) * 20)


def compute_reports(
    learners: list[Learner],
    kinds: list[str | None],
    named: list[Contribution],
    aggregated: int,
) -> list[tuple[Address, list[int], int]]:
    """Every party's appraisal of the ``named`` contributions (the first ``aggregated`` in the
    aggregate) in micro-units, as its precommit would carry them: honest parties appraise on
    their own data (reputation values, against the model the round trained from, which they still
    hold), poisoners forge theirs in their colluders' favour."""
    reports = []
    sources = [StateSource(c.state) for c in named]
    for i, learner in enumerate(learners):
        if kinds[i] in POISONING_ATTACKS:
            values = [
                FORGED_VALUE if kinds[int(c.contributor)] in POISONING_ATTACKS else -FORGED_VALUE
                for c in named
            ]
        else:
            arrival = [float(c.contributor) for c in named]  # honest first, as gossip brings
            both = learner.appraise(sources, aggregated, reputation=True, arrival=arrival)
            values = both[len(named) :]  # the reputation values, after the settlement ones
        reports.append((party_address(i), [round(v * 1_000_000) for v in values], 100))
    return reports


def compute_dp_config(
    args: argparse.Namespace, config: TaskConfig, smallest: int
) -> dict[str, Any]:
    """Noise for which the smallest party's training over every round spends ``--dp-epsilon``."""
    from opacus.accountants.utils import get_noise_multiplier

    sample_rate, steps = compute_dp_steps(get_task(config), smallest)
    noise = get_noise_multiplier(
        target_epsilon=args.dp_epsilon,
        target_delta=args.dp_delta,
        sample_rate=sample_rate,
        steps=steps * args.rounds,
    )
    return {
        "dp_noise_multiplier": float(noise),
        "dp_target_epsilon": args.dp_epsilon,
        "dp_delta": args.dp_delta,
    }


def propose_within_budget(learner: Learner) -> dict[str, torch.Tensor] | None:
    """A proposal, or None once the party's privacy budget is spent (it sits the round out)."""
    try:
        return learner.propose()
    except PrivacyBudgetExceeded:
        return None


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(s) for s in text.split(",")]


def parse_byzantine(values: list[str]) -> list[str]:
    kinds: list[str] = []
    for value in values:
        kind, _, count = value.partition(":")
        if kind not in ATTACKS:
            raise SystemExit(
                f"error: unknown byzantine kind {kind!r}; choose from {', '.join(ATTACKS)}"
            )
        kinds += [kind] * int(count or 1)
    return kinds


def compute_byzantine_listing(
    contributions: list[Contribution],
    kinds: list[str | None],
    stakes: list[int],
    threshold: Threshold,
) -> list[Contribution]:
    """A poisoner's best verifiable list: every byzantine contribution, then honest ones in
    order until the listed stake is a quorum."""
    total = sum(stakes)
    return compute_attack_listing(
        contributions,
        lambda c: kinds[int(c.contributor)] is not None,
        lambda listed: is_quorum(sum(stakes[int(c.contributor)] for c in listed), total, threshold),
    )


def compute_round_bytes(layout: WeightsLayout, codec: UpdateCodec, parties: int) -> dict[str, int]:
    """What a contribution weighs, and what each validator receives per round: the other
    parties' contributions, and the proposed model unless it computes it from them (§3.8)."""
    contribution = codec.compute_encoded_layout(layout).file_size
    model = layout.file_size if codec.sends_weights else 0
    return {
        "model_bytes": layout.file_size,
        "contribution_bytes": contribution,
        "received_bytes_per_validator_round": (parties - 1) * contribution + model,
    }


def compute_scaled_update(
    base: dict[str, torch.Tensor], state: dict[str, torch.Tensor], factor: float
) -> dict[str, torch.Tensor]:
    """``base`` plus ``factor`` times ``state``'s update from it."""
    return {k: base[k] + (state[k] - base[k]) * factor for k in state}


def test_accuracy(learner: Learner, state: dict[str, torch.Tensor], test: Dataset) -> float:
    return evaluate_state(learner.task, state, test).accuracy


def run_trial(args: argparse.Namespace, seed: int, attacks: list[str]) -> Trial:
    torch.manual_seed(seed)
    config = replace(args.task_config, seed=seed)
    config, pool, test = load_trial_data(config, args.data_file, args.label_column, seed)
    task = get_task(config)
    if "backdoor" in attacks and not 0 <= args.backdoor_target < config.classes:
        raise SystemExit(
            f"error: --backdoor-target {args.backdoor_target} is not a class of this data "
            f"(0 to {config.classes - 1})"
        )
    parties = make_party_data(pool, args.parties, args.partition, seed)
    if args.dp_epsilon > 0:
        config = replace(
            config, **compute_dp_config(args, config, min(len(p.train) for p in parties))
        )
        task = get_task(config)
    kinds: list[str | None] = [None] * (args.parties - len(attacks)) + list(attacks)
    learners = make_party_learners(task, parties, seed, attacks, args.backdoor_target)
    stakes = [100] * args.parties
    total = sum(stakes)
    validator_set = ValidatorSet.from_genesis(
        Validator(party_address(i), PublicKey(bytes([i]) * 32), Stake(s))
        for i, s in enumerate(stakes)
    )
    index_of = {party_address(i): i for i in range(args.parties)}
    template = learners[0].current()
    layout = WeightsLayout.of_state(template)
    codec = parse_codec(config.codec)
    feedback = [ErrorFeedback(codec) for _ in learners]

    honest_norms: dict[int, float] = {}  # this round's, as sent (honest parties send first)

    def rescale(i: int, sent: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Record an honest update's norm; an attacker's, with --attackers-median-norm, is
        scaled to the median of the round's honest ones (the most the norm clip lets through)."""
        if not args.attackers_median_norm:
            return sent
        base = learners[i].current()
        norm = float(compute_update_norms(StateSource(base), [StateSource(sent)], layout)[0])
        if kinds[i] is None:
            honest_norms[i] = norm
            return sent
        if not honest_norms or norm == 0.0:  # a lazy attacker's update has no size to scale
            return sent
        ordered = sorted(honest_norms.values())  # the upper median: with the attacker's own
        # norm among five, still the median the aggregate clips to
        return compute_scaled_update(base, sent, ordered[len(ordered) // 2] / norm)

    def send(i: int, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Party i's contribution as validators decode it (task.codec, with error feedback)."""
        if codec.sends_weights:
            return rescale(i, state)
        base = StateSource(learners[i].current())
        if args.attackers_fresh and kinds[i] is not None:
            feedback[i].residue.clear()
        entries = feedback[i].encode(StateSource(state), base, layout)
        decoded = DecodedContribution(base, StateSource(entries), codec, layout)
        return rescale(i, collect_state(layout, iter_source(decoded, layout)))

    reputations: dict[Address, Reputation] = {}
    honest_left_out = [0] * args.parties
    attackers_left_out = 0
    accuracy = test_accuracy(learners[0], template, test)
    accepted = rejected = byzantine_accepted = 0
    worst_drop = 0.0
    curve: list[float] = []
    rejected_rounds: list[int] = []
    ml_cpu = 0.0
    previous_global: dict[str, torch.Tensor] | None = None
    started = time.perf_counter()
    for round_index in range(args.rounds):
        proposer = index_of[validator_set.proposer]
        validator_set = compute_incremented(validator_set, times=1)
        cpu0 = time.process_time()
        margin: float | None = None  # the vote rule's own, unless the aggregate is verified
        if args.mode == "solo":
            candidate = propose_within_budget(learners[proposer]) or learners[proposer].current()
        else:
            typical = compute_typical_magnitude(list(reputations.values()))
            for i, learner in enumerate(learners):  # the state shows every reputation
                if isinstance(learner, ByzantineLearner) and args.reputation:
                    learner.reputation = reputations.get(party_address(i), 0) / 1e6
                    learner.reputation_cutoff = -typical / 1e6
            honest_norms.clear()
            sent = propose_round(learners, send, propose_within_budget)
            contributions = [
                Contribution(str(i), sent[i], learners[i].samples)
                for i in sorted(sent)
                if not (args.attackers_absent and kinds[i] is not None)
            ]
            left_out: list[Contribution] = []
            if args.reputation:
                excluded = compute_reputation_exclusions(
                    [(party_address(int(c.contributor)), 100) for c in contributions],
                    reputations,
                    total,
                    args.threshold,
                )
                left_out = [
                    c for c in contributions if party_address(int(c.contributor)) in excluded
                ]
                contributions = [c for c in contributions if c not in left_out]
                for c in left_out:
                    if kinds[int(c.contributor)] is None:
                        honest_left_out[int(c.contributor)] += 1
                    else:
                        attackers_left_out += 1
            if kinds[proposer] in POISONING_ATTACKS:
                # Validators re-compute the aggregate from the listed contributions, so a
                # poisoner cannot propose its own weights; it lists the fewest honest
                # contributions that, with its colluders', still make a verified quorum.
                listed = compute_byzantine_listing(contributions, kinds, stakes, args.threshold)
                screen = None
            else:
                listed, screen = contributions, learners[proposer].score
            candidate, used = aggregate_contributions(
                learners[proposer].current(),
                listed,
                config.aggregation,
                screen,
                config.screen_margin,
                momentum=config.server_momentum,
                previous_global=previous_global,
                population=args.parties,
                learning_rate=config.server_learning_rate,
            )
            used_stake = sum(stakes[int(i)] for i in used)
            if is_quorum(used_stake, total, args.threshold):
                margin = config.verified_margin
        try:  # the weights travel as safetensors and are checked like any network input
            candidate = decode_weights(
                encode_weights(candidate), template, config.max_weights_bytes
            )
            approving = 0
            for i, learner in enumerate(learners):
                colluding = kinds[i] in POISONING_ATTACKS
                if colluding:
                    approve = kinds[proposer] is not None
                else:
                    approve = learner.vote(candidate, margin).approve
                approving += stakes[i] if approve else 0
        except WeightsError:
            approving = 0
        ml_cpu += time.process_time() - cpu0
        if is_quorum(approving, total, args.threshold):
            accepted += 1
            byzantine_accepted += kinds[proposer] is not None and kinds[proposer] != "approve_all"
            previous_global = learners[0].current()
            if args.reputation and args.mode == "aggregate":
                by_id = {c.contributor: c for c in [*listed, *contributions, *left_out]}
                aggregated = [by_id[i] for i in used]
                named = aggregated + [
                    c for c in [*contributions, *left_out] if c.contributor not in used
                ]
                reports = compute_reports(learners, kinds, named, len(aggregated))
                reputations = compute_next_reputations(
                    reputations,
                    [party_address(int(c.contributor)) for c in named],
                    reports,
                    round(args.reputation * 1_000_000),
                    {party_address(int(c.contributor)) for c in left_out},
                    round(args.reputation_recovery * 1_000_000),
                )
                if args.trace:
                    shown = {int(a[0]): v for a, v in reputations.items()}
                    print(f"  seed {seed} round {round_index} reputations {shown}")
            for learner in learners:
                learner.accept(candidate)
            for party in feedback:  # a model was committed after these encodings
                party.settle()
            new_accuracy = test_accuracy(learners[0], candidate, test)
            worst_drop = max(worst_drop, accuracy - new_accuracy)
            if args.trace:
                print(
                    f"  seed {seed} round {round_index} proposer {proposer} "
                    f"accepted {accuracy:.3f} -> {new_accuracy:.3f} ({approving}/{total})"
                )
            accuracy = new_accuracy
        else:
            rejected += 1
            rejected_rounds.append(round_index + 1)
            previous_global = None  # as a node: the next attempt aggregates without momentum
            for party in feedback:  # and trains afresh from the same model (§3.2)
                party.vote_down()
        curve.append(accuracy)
    seconds_per_round = (time.perf_counter() - started) / args.rounds
    honest_parties = [p for i, p in enumerate(parties) if kinds[i] not in POISONING_ATTACKS]
    local_only = compute_local_only_accuracies(
        task, honest_parties, test, seed, args.local_only_epochs
    )
    pooled = compute_pooled_model(task, parties, seed, args.pooled_epochs)
    pooled_accuracy = task.evaluate(pooled, test).accuracy
    triggered = (
        compute_triggered_test(test, args.backdoor_target) if "backdoor" in attacks else None
    )
    honest_ledgers = [x.privacy for x in learners if x.privacy is not None]
    return Trial(
        seed=seed,
        final_accuracy=accuracy,
        local_only_best=max(local_only),
        pooled_accuracy=pooled_accuracy,
        accepted=accepted,
        rejected=rejected,
        byzantine_accepted=byzantine_accepted,
        worst_accepted_drop=max(worst_drop, 0.0),
        seconds_per_round=seconds_per_round,
        ml_cpu_seconds_per_party_round=ml_cpu / args.rounds / args.parties,
        epsilon_spent=max(ledger.spent_epsilon for ledger in honest_ledgers)
        if honest_ledgers
        else None,
        noise=config.dp_noise_multiplier,
        curves=AccuracyCurves(curve, local_only, pooled_accuracy, rejected_rounds),
        round_bytes=compute_round_bytes(layout, codec, args.parties),
        honest_left_out=[n for i, n in enumerate(honest_left_out) if kinds[i] is None],
        attackers_left_out=attackers_left_out,
        attack_success_rate=None
        if triggered is None
        else evaluate_state(task, learners[0].current(), triggered).accuracy,
        trigger_natural_rate=None
        if triggered is None
        else task.evaluate(pooled, triggered).accuracy,
    )


def parse_trial_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """The command line as ``run_trial`` takes it (the task config built, the threshold
    parsed), and the attacks; how bench/peers/flower.py builds its trials too."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parties", type=int, default=5)
    parser.add_argument("--task", default=None, help="default: digits-mlp, or tabular-mlp")
    parser.add_argument("--data-file", default="", help="the user's CSV or NPZ instead of digits")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--partition", default="dirichlet:0.5")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--mode", choices=["aggregate", "solo"], default="aggregate")
    parser.add_argument("--threshold", default="2/3")
    parser.add_argument("--byzantine", action="append", default=[], help="KIND:COUNT, repeatable")
    parser.add_argument("--local-epochs", type=int, default=None)
    parser.add_argument("--margin", type=float, default=None)
    parser.add_argument("--verified-margin", type=float, default=None)
    parser.add_argument("--metric", choices=["accuracy", "loss"], default=None)
    parser.add_argument("--trace", action="store_true", help="print every accepted update")
    parser.add_argument(
        "--attackers-absent",
        action="store_true",
        help="leave every byzantine party's contribution out of every aggregate: what a perfect "
        "defence could reach (with --byzantine lazy:N, whose votes are honest)",
    )
    parser.add_argument(
        "--attackers-fresh",
        action="store_true",
        help="byzantine parties keep no error feedback: each update is encoded alone (nobody can "
        "check that a party follows it)",
    )
    parser.add_argument(
        "--attackers-median-norm",
        action="store_true",
        help="byzantine parties scale their update, as sent, to the median norm of the round's "
        "honest ones (they send last and see them; the most the norm clip lets through)",
    )
    parser.add_argument(
        "--backdoor-target",
        type=int,
        default=BACKDOOR_TARGET,
        help="the class a backdoor's trigger sends inputs to (pick one the trigger does not "
        "reach alone: see trigger_natural_rate_mean)",
    )
    parser.add_argument("--confidence", type=float, default=None)
    parser.add_argument("--aggregation", default=None)
    parser.add_argument("--screen-margin", type=float, default=None)
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--pooled-epochs", type=int, default=POOLED_EPOCHS)
    parser.add_argument("--local-only-epochs", type=int, default=LOCAL_ONLY_EPOCHS)
    parser.add_argument("--hidden", type=int, default=None)
    parser.add_argument("--server-momentum", type=float, default=None)
    parser.add_argument(
        "--server-learning-rate", type=float, default=None, help="the outer learning rate"
    )
    parser.add_argument("--codec", default=None, help="how contributions travel (task.codec)")
    parser.add_argument(
        "--reputation",
        type=float,
        default=0.0,
        help="reputation's decay per round (§3.9; 0: no reputation): every contribution is "
        "appraised each accepted round and the lowest negative reputations are left out",
    )
    parser.add_argument(
        "--reputation-recovery",
        type=float,
        default=0.95,
        help="a left-out contributor's decay per round it is out (only its positive values count)",
    )
    parser.add_argument("--dp-epsilon", type=float, default=0.0, help="target epsilon; 0: no DP")
    parser.add_argument("--dp-delta", type=float, default=1e-5)
    parser.add_argument("--output", choices=["text", "json"], default="text")
    parser.add_argument("--plot", default="", help="draw the first seed's rounds to FILE.png")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    args.threshold = Threshold.parse(args.threshold)
    attacks = parse_byzantine(args.byzantine)
    if len(attacks) >= args.parties:
        raise SystemExit("error: at least one party must be honest")
    config = (
        compute_default_trial_config(args.data_file)
        if args.task is None
        else TaskConfig(name=args.task)
    )
    args.task = config.name
    overrides = {
        "local_epochs": args.local_epochs,
        "margin": args.margin,
        "verified_margin": args.verified_margin,
        "metric": args.metric,
        "confidence": args.confidence,
        "aggregation": args.aggregation,
        "screen_margin": args.screen_margin,
        "learning_rate": args.learning_rate,
        "hidden": args.hidden,
        "server_momentum": args.server_momentum,
        "server_learning_rate": args.server_learning_rate,
        "codec": args.codec,
    }
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    try:
        config.validate()
    except MLError as error:
        parser.error(str(error))
    args.task_config = config
    return args, attacks


def main() -> None:
    torch.set_num_threads(1)
    args, attacks = parse_trial_args()
    trials = [run_trial(args, seed, attacks) for seed in parse_seeds(args.seeds)]
    if args.plot:
        first = trials[0]
        first.curves.title = (
            f"{args.task}, {args.parties} parties, {args.partition}, seed {first.seed}, "
            f"byzantine {', '.join(attacks) or 'none'}"
        )
        draw_accuracy(first.curves, Path(args.plot))
    if args.output == "text":
        print(
            f"{args.task} {args.data_file or 'digits'} {args.parties} parties {args.partition} "
            f"{args.rounds} rounds "
            f"{args.mode} threshold {args.threshold} byzantine {attacks or 'none'}"
        )
        print(
            f"{'seed':>4} {'final':>6} {'local':>6} {'pooled':>6} {'acc':>4} {'rej':>4} "
            f"{'byz':>4} {'drop':>6} {'s/round':>8} {'cpu/party':>9}"
        )
        for t in trials:
            print(
                f"{t.seed:>4} {t.final_accuracy:>6.3f} {t.local_only_best:>6.3f} "
                f"{t.pooled_accuracy:>6.3f} {t.accepted:>4} {t.rejected:>4} "
                f"{t.byzantine_accepted:>4} {t.worst_accepted_drop:>6.3f} "
                f"{t.seconds_per_round:>8.3f} {t.ml_cpu_seconds_per_party_round:>9.3f}"
            )
        for t in trials:
            if t.attack_success_rate is not None:
                print(
                    f"seed {t.seed}: the backdoor's success {t.attack_success_rate:.3f}; the "
                    f"trigger alone, on the pooled model: {t.trigger_natural_rate:.3f}"
                )
    mean = statistics.fmean
    summary = {
        "bench": "quality",
        "task": args.task,
        "data_file": args.data_file or None,
        "parties": args.parties,
        "partition": args.partition,
        "rounds": args.rounds,
        "mode": args.mode,
        "threshold": str(args.threshold),
        "byzantine": attacks,
        "attackers_fresh": args.attackers_fresh,
        "attackers_median_norm": args.attackers_median_norm,
        "backdoor_target": args.backdoor_target if "backdoor" in attacks else None,
        "seeds": [t.seed for t in trials],
        "codec": args.task_config.codec,
        **trials[0].round_bytes,
        "final_accuracy_mean": round(mean(t.final_accuracy for t in trials), 4),
        # the last rotation's mean: the final round is always the same party's turn, so under
        # attack the final accuracy alone is the model right after the attacker's own proposal
        "last_rotation_accuracy_mean": round(
            mean(mean(t.curves.chain[-args.parties :]) for t in trials), 4
        ),
        "attack_success_rate_mean": round(mean(t.attack_success_rate or 0.0 for t in trials), 4)
        if "backdoor" in attacks
        else None,
        "trigger_natural_rate_mean": round(mean(t.trigger_natural_rate or 0.0 for t in trials), 4)
        if "backdoor" in attacks
        else None,
        "local_only_best_mean": round(mean(t.local_only_best for t in trials), 4),
        "pooled_accuracy_mean": round(mean(t.pooled_accuracy for t in trials), 4),
        "accepted": sum(t.accepted for t in trials),
        "rejected": sum(t.rejected for t in trials),
        "byzantine_accepted": sum(t.byzantine_accepted for t in trials),
        "worst_accepted_drop": round(max(t.worst_accepted_drop for t in trials), 4),
        "seconds_per_round": round(mean(t.seconds_per_round for t in trials), 4),
        "ml_cpu_seconds_per_party_round": round(
            mean(t.ml_cpu_seconds_per_party_round for t in trials), 4
        ),
        "dp_epsilon_spent": max((t.epsilon_spent or 0.0) for t in trials)
        if args.dp_epsilon
        else None,
        "dp_noise_multiplier": [round(t.noise, 4) for t in trials] if args.dp_epsilon else None,
        "reputation": args.reputation or None,
        "honest_left_out_max": max(max(t.honest_left_out, default=0) for t in trials),
        "attackers_left_out": sum(t.attackers_left_out for t in trials),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
