"""Emergent communication in a recording: does a token say something about what its speaker sees (positive
signalling), and do listeners act on the tokens they hear (positive listening)? Measured as Lowe et al. 2019
("On the pitfalls of measuring emergent communication") ask: mutual information against a shuffled null,
never by reward.

Every agent-step with a recorded action is one *decision*: the agent as snapshot ``s`` shows it (food in its
view window, its own energy, the agents in its window and the tokens they broadcast in the step that produced
``s``, which is what its observation's message channel holds) and its action of step ``s`` (kind and token:
``actions_by_step[s + 1]``). What an agent sees is rebuilt from the snapshot: the food cells and positions,
the config's view radius, the torus' wrap.

positive signalling
    over decisions, I(token sent; observation), the observation being (food in view, energy quartile); its two
    parts I(token; food in view) and I(token; energy quartile); and Lowe et al.'s speaker consistency,
    I(token; the speaker's own action kind in the same step) (pooled over speakers).
positive listening
    over (listener decision, agent in its view that acted in the last step) pairs: I(token heard from that
    agent; the listener's response
    to it | the listener sees food), the response being approach / retreat / no move relative to that agent
    (the move's intent; a blocked move counts). Conditioning on whether the listener sees food itself keeps
    "walks to the food that speaker and listener both see" from passing for "follows the call".

The null: tokens shuffled across the agents of the same step (``permutations`` times, from a fixed seed), which
keeps every step's token counts, every observation and every move. Plug-in MI of a finite sample is positive
even between independent variables, the bias Lowe et al. warn about; the null's mean is that bias,
``excess`` (MI minus the null mean) the corrected figure, and ``p_value`` the share of shuffles that reach the
observed MI ((1 + count) / (1 + permutations)).

This is what a recording can show. Whether tokens *cause* behaviour is the interventional test of
``society_env.app.communication`` (the channel zeroed or shuffled, paired episodes; Jaques et al. 2019).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from society_env.analysis.loading import RunData
from society_env.world.encodings import EAST, MOVE_DELTAS, NORTH

PERMUTATIONS = 200
"""Shuffles per null distribution: the smallest p-value is 1 / 201."""
SIGNIFICANCE = 0.01
"""A measure is positive when its p-value is at most this."""
ENERGY_QUANTILES = (0.25, 0.5, 0.75)
"""Own energy enters the observation as its quartile among all decisions of the recording."""
NO_MOVE, APPROACH, RETREAT = range(3)
RESPONSES = ("no_move", "approach", "retreat")
NOT_SENT = -1
"""Broadcast token of an agent that had no action in the step (see :func:`broadcast_tokens`)."""


class NoMessageTokens(ValueError):
    """A recording whose tokens cannot carry information (no vocabulary, no recorded tokens, one value only)."""


# ---------------------------------------------------------------------------------------------
# estimators
# ---------------------------------------------------------------------------------------------
def _entropy_bits(codes: np.ndarray) -> float:
    counts = np.bincount(codes)
    p = counts[counts > 0] / codes.size
    return float(-(p * np.log2(p)).sum())


def _combine(*columns: np.ndarray) -> np.ndarray:
    """One non-negative integer code per row for the tuple of the columns' values."""
    code = np.zeros(columns[0].size, dtype=np.int64)
    for column in columns:
        code = code * (int(column.max(initial=0)) + 1) + column
    return code


def mutual_information(x: np.ndarray, y: np.ndarray, given: np.ndarray | None = None) -> float:
    """Plug-in I(X; Y) in bits, or I(X; Y | Z) with ``given`` (non-negative integer codes, one per sample)."""
    if x.size == 0:
        return 0.0
    z = np.zeros_like(x) if given is None else given
    xz, yz, xyz = _combine(z, x), _combine(z, y), _combine(z, x, y)
    bits = _entropy_bits(xz) + _entropy_bits(yz) - _entropy_bits(xyz) - _entropy_bits(z)
    return max(bits, 0.0)  # rounding can leave -1e-16


def shuffled_within(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An index array that permutes rows within each group (``groups``: sorted integers, each group contiguous):
    one sort of the group plus a uniform draw in [0, 1), which orders rows at random inside their group."""
    return np.argsort(groups + rng.random(groups.size))


@dataclass
class Dependence:
    """Plug-in mutual information between two discrete variables, against its shuffled null."""

    bits: float
    null_mean: float
    null_p95: float
    p_value: float
    samples: int

    @property
    def excess(self) -> float:
        """MI above the null's mean: the finite-sample bias removed."""
        return self.bits - self.null_mean

    @property
    def significant(self) -> bool:
        return self.samples > 0 and self.p_value <= SIGNIFICANCE

    def record(self) -> dict[str, Any]:
        return {"bits": round(self.bits, 5), "null_mean": round(self.null_mean, 5), "null_p95": round(self.null_p95, 5),
                "excess": round(self.excess, 5), "p_value": round(self.p_value, 5), "samples": self.samples,
                "significant": self.significant}


def dependence(tokens: np.ndarray, groups: np.ndarray, take: np.ndarray, y: np.ndarray, given: np.ndarray | None,
               permutations: int, rng: np.random.Generator) -> Dependence:
    """I(tokens[take]; y | given) against the null of ``tokens`` shuffled within ``groups`` (the steps)."""
    z = np.zeros_like(y) if given is None else given
    unchanged = _entropy_bits(_combine(z, y)) - _entropy_bits(z)  # the terms of I(X; Y | Z) a shuffle of X keeps

    def information(x: np.ndarray) -> float:
        return max(_entropy_bits(_combine(z, x)) - _entropy_bits(_combine(z, x, y)) + unchanged, 0.0) if x.size else 0.0

    observed = information(tokens[take])
    null = np.array([information(tokens[shuffled_within(groups, rng)][take]) for _ in range(permutations)])
    if take.size == 0 or permutations == 0:
        return Dependence(observed, 0.0, 0.0, 1.0, int(take.size))
    # a tolerance, so a shuffle that reproduces the observed table counts as reaching it despite rounding
    reached = int(np.count_nonzero(null >= observed - 1e-12))
    return Dependence(observed, float(null.mean()), float(np.quantile(null, 0.95)),
                      (1 + reached) / (1 + permutations), int(take.size))


# ---------------------------------------------------------------------------------------------
# what each agent saw, said, heard and did
# ---------------------------------------------------------------------------------------------
@dataclass
class Decisions:
    """One row per agent-step with a recorded action (``snapshot`` sorted): what the agent saw and did."""

    snapshot: np.ndarray
    entry: np.ndarray
    """The agent's row in the run's flat snapshot arrays (``RunData.slot``)."""
    token: np.ndarray
    """The token it sent in this step's action."""
    kind: np.ndarray
    sees_food: np.ndarray
    energy: np.ndarray


@dataclass
class Hearings:
    """One row per (listener decision, other agent in the listener's view)."""

    decision: np.ndarray
    """The listener's row of :class:`Decisions`."""
    speaker: np.ndarray
    """The heard agent's row in the run's flat snapshot arrays."""
    response: np.ndarray
    """``NO_MOVE``, ``APPROACH`` or ``RETREAT``: the listener's move relative to the heard agent."""


def broadcast_tokens(run: RunData) -> np.ndarray:
    """Per row of the flat snapshot arrays: the token that agent broadcast in the step that produced the
    snapshot (what others hear from it while deciding on that snapshot), or ``NOT_SENT`` for an agent that had
    no action in that step (a newborn, everyone at step 0). A newborn's channel reads 0, but it chose nothing,
    and it stands beside its parent: counted as a silent speaker it would tie token 0 to being adjacent."""
    heard = np.full(run.slot.size, NOT_SENT, dtype=np.int64)
    for step in range(run.steps):
        rows = run.agents_at(step)
        tokens = run.tokens_by_step[step]
        if tokens:
            heard[rows] = [tokens.get(slot, NOT_SENT) for slot in run.slot[rows].tolist()]
    return heard


def _windows(grid: np.ndarray, radius: int) -> np.ndarray:
    """Every cell's (2r+1) x (2r+1) view window of a torus grid, as a read-only view."""
    padded = np.pad(grid, radius, mode="wrap")
    return sliding_window_view(padded, (2 * radius + 1, 2 * radius + 1))


def _move_responses(kind: np.ndarray, d_row: np.ndarray, d_col: np.ndarray) -> np.ndarray:
    """Approach / retreat / no move of moves of ``kind`` relative to agents at offsets (d_row, d_col)."""
    moves = (kind >= NORTH) & (kind <= EAST)
    delta = MOVE_DELTAS[np.where(moves, kind, 0)]
    before = np.abs(d_row) + np.abs(d_col)
    after = np.abs(d_row - delta[:, 0]) + np.abs(d_col - delta[:, 1])
    return np.where(~moves, NO_MOVE, np.where(after < before, APPROACH, RETREAT))


def decisions_and_hearings(run: RunData) -> tuple[Decisions, Hearings]:
    config = run.config
    radius, height, width = config.view_radius, config.height, config.width
    centre = radius
    parts: dict[str, list[np.ndarray]] = {name: [] for name in
                                          ("snapshot", "entry", "token", "kind", "food", "energy", "h_decision",
                                           "h_speaker", "h_response")}
    decided = 0
    for step in range(run.steps - 1):
        kinds, tokens = run.actions_by_step[step + 1], run.tokens_by_step[step + 1]
        rows = run.agents_at(step)
        slots = run.slot[rows]
        acting = np.fromiter((slot in tokens for slot in slots.tolist()), bool, slots.size)
        if not acting.any():
            continue
        entries = np.arange(rows.start, rows.stop)
        food = np.zeros(height * width, dtype=bool)
        food[run.food_cell[run.food_at(step)]] = True
        occupant = np.full((height, width), -1, dtype=np.int64)
        occupant[run.row[rows], run.col[rows]] = entries
        actor_rows, actor_cols = run.row[rows][acting], run.col[rows][acting]
        food_in_view = _windows(food.reshape(height, width), radius)[actor_rows, actor_cols].any(axis=(1, 2))
        in_view = _windows(occupant, radius)[actor_rows, actor_cols]  # (actors, 2r+1, 2r+1)
        in_view[:, centre, centre] = -1  # the agent itself
        actor_slots = slots[acting].tolist()
        actor_kinds = np.array([kinds[slot] for slot in actor_slots], dtype=np.int64)
        parts["snapshot"].append(np.full(len(actor_slots), step))
        parts["entry"].append(entries[acting])
        parts["token"].append(np.array([tokens[slot] for slot in actor_slots], dtype=np.int64))
        parts["kind"].append(actor_kinds)
        parts["food"].append(food_in_view)
        parts["energy"].append(run.energy[rows][acting])
        listener, i, j = np.nonzero(in_view >= 0)
        parts["h_decision"].append(decided + listener)
        parts["h_speaker"].append(in_view[listener, i, j])
        parts["h_response"].append(_move_responses(actor_kinds[listener], i - centre, j - centre))
        decided += len(actor_slots)

    def joined(name: str, dtype=np.int64) -> np.ndarray:
        return np.concatenate(parts[name]).astype(dtype) if parts[name] else np.zeros(0, dtype=dtype)

    decisions = Decisions(joined("snapshot"), joined("entry"), joined("token"), joined("kind"), joined("food", bool),
                          joined("energy"))
    return decisions, Hearings(joined("h_decision"), joined("h_speaker"), joined("h_response"))


# ---------------------------------------------------------------------------------------------
# the measures
# ---------------------------------------------------------------------------------------------
@dataclass
class Communication:
    """Both measures of one recording (or of the decisions of one policy in it)."""

    policy: str | None
    decisions: int
    token_counts: dict[int, int]
    signalling: dict[str, Dependence]
    """``observation`` (food in view and energy quartile), ``food``, ``energy``, ``consistency`` (own action)."""
    listening: Dependence
    food_share_by_token: dict[int, float]
    """Per token sent: the share of its uses with food in the speaker's view."""
    approach_by_token: dict[int, dict[str, Any]]
    """Per token heard, among hearings whose listener sees no food and moves: share of moves towards the speaker."""
    permutations: int
    seed: int

    @property
    def positive_signalling(self) -> bool:
        return self.signalling["observation"].significant

    @property
    def positive_listening(self) -> bool:
        return self.listening.significant

    def record(self) -> dict[str, Any]:
        return {
            "measured": True, "policy": self.policy, "decisions": self.decisions,
            "token_counts": {str(token): count for token, count in self.token_counts.items()},
            "positive_signalling": self.positive_signalling, "positive_listening": self.positive_listening,
            "signalling": {name: measure.record() for name, measure in self.signalling.items()},
            "listening": self.listening.record(),
            "food_share_by_token": {str(token): round(share, 4) for token, share in self.food_share_by_token.items()},
            "approach_by_token": {str(token): row for token, row in self.approach_by_token.items()},
            "permutations": self.permutations, "seed": self.seed, "significance": SIGNIFICANCE,
        }


def _check_tokens(run: RunData, decisions: Decisions, policy: str | None) -> None:
    vocabulary = run.config.message_vocab_size
    if vocabulary < 2:
        raise NoMessageTokens(f"{run.run_dir.name}: the world has a message vocabulary of {vocabulary} token: agents "
                              "cannot signal, so there is no communication to measure")
    who = f"agents of policy {policy!r}" if policy else "agents"
    if decisions.token.size == 0:
        raise NoMessageTokens(f"{run.run_dir.name}: the recording holds no message tokens of {who} (no recorded action "
                              "with a message field): there is no communication to measure")
    used = np.unique(decisions.token)
    if used.size < 2:
        raise NoMessageTokens(f"{run.run_dir.name}: every one of the {decisions.token.size} decisions of {who} sent "
                              f"token {int(used[0])}{' (silence)' if used[0] == 0 else ''}: a channel that never "
                              "changes carries no information")


def _approach_table(tokens: np.ndarray, response: np.ndarray) -> dict[int, dict[str, Any]]:
    moved = response != NO_MOVE
    table = {}
    for token in np.unique(tokens[moved]).tolist():
        chosen = moved & (tokens == token)
        table[int(token)] = {"moves": int(chosen.sum()),
                             "approach_share": round(float(np.mean(response[chosen] == APPROACH)), 4)}
    return table


def communication(run: RunData, policy: str | None = None, permutations: int = PERMUTATIONS,
                  seed: int = 0, rebuilt: tuple[Decisions, Hearings] | None = None) -> Communication:
    """Positive signalling and positive listening of a loaded recording (of the decisions of agents driven by
    ``policy``, when given: they as speakers and listeners, heard agents of any policy). Deterministic for a
    given ``seed`` (the shuffles' generator). ``NoMessageTokens`` when the tokens cannot carry information.
    ``rebuilt``: :func:`decisions_and_hearings` of ``run``, when the caller has it already."""
    if permutations < 0:
        raise ValueError("permutations must be 0 or more")
    decisions, hearings = rebuilt if rebuilt is not None else decisions_and_hearings(run)
    if policy is not None:
        known = sorted({life.policy for life in run.agents.values()})
        if policy not in known:
            raise ValueError(f"{run.run_dir.name} has no agents of policy {policy!r}; its policies: {', '.join(known)}")
        mine = np.array([run.agents[slot].policy == policy if slot in run.agents else False
                         for slot in run.slot[decisions.entry].tolist()], dtype=bool)
        kept = np.flatnonzero(mine)
        renumber = np.full(mine.size, -1, dtype=np.int64)
        renumber[kept] = np.arange(kept.size)
        heard = mine[hearings.decision]
        hearings = Hearings(renumber[hearings.decision[heard]], hearings.speaker[heard], hearings.response[heard])
        decisions = Decisions(*(getattr(decisions, name)[kept] for name in
                                ("snapshot", "entry", "token", "kind", "sees_food", "energy")))
    _check_tokens(run, decisions, policy)
    rng = np.random.default_rng(seed)
    everyone = np.arange(decisions.token.size)
    food = decisions.sees_food.astype(np.int64)
    edges = np.unique(np.quantile(decisions.energy, ENERGY_QUANTILES))
    energy = np.searchsorted(edges, decisions.energy, side="right").astype(np.int64)

    def signalling(y: np.ndarray) -> Dependence:
        return dependence(decisions.token, decisions.snapshot, everyone, y, None, permutations, rng)

    measures = {"observation": signalling(_combine(food, energy)), "food": signalling(food),
                "energy": signalling(energy), "consistency": signalling(decisions.kind)}
    # listening: the speakers that broadcast (their tokens shuffled within the step), each hearing of one of them
    broadcast = broadcast_tokens(run)
    senders = np.flatnonzero(broadcast != NOT_SENT)
    sender_row = np.full(broadcast.size, -1, dtype=np.int64)
    sender_row[senders] = np.arange(senders.size)
    chosen = sender_row[hearings.speaker] >= 0
    hearings = Hearings(hearings.decision[chosen], hearings.speaker[chosen], hearings.response[chosen])
    heard = broadcast[hearings.speaker]
    listener_sees_food = food[hearings.decision]
    sender_step = np.arange(run.steps).repeat(np.diff(run.agent_offsets))[senders]
    listening = dependence(broadcast[senders], sender_step, sender_row[hearings.speaker], hearings.response,
                           listener_sees_food, permutations, rng)
    tokens, counts = np.unique(decisions.token, return_counts=True)
    blind = listener_sees_food == 0
    return Communication(
        policy=policy, decisions=int(decisions.token.size),
        token_counts=dict(zip(tokens.tolist(), counts.tolist())), signalling=measures, listening=listening,
        food_share_by_token={int(t): float(decisions.sees_food[decisions.token == t].mean()) for t in tokens.tolist()},
        approach_by_token=_approach_table(heard[blind], hearings.response[blind]),
        permutations=permutations, seed=seed)


def communication_numbers(run: RunData, permutations: int = PERMUTATIONS, seed: int = 0) -> dict[str, Any]:
    """The report's ``communication`` section: :func:`communication`'s record, or, for a recording whose tokens
    cannot carry information, ``{"measured": False, "reason": ...}``; with more than one policy, the same per
    policy under ``per_policy`` (a society's pooled figure can hide the one policy that talks)."""
    rebuilt = decisions_and_hearings(run)

    def measured(policy: str | None) -> dict[str, Any]:
        try:
            return communication(run, policy, permutations, seed, rebuilt).record()
        except NoMessageTokens as error:
            return {"measured": False, "reason": str(error)}

    numbers = measured(None)
    policies = sorted({life.policy for life in run.agents.values()})
    if len(policies) > 1:
        numbers["per_policy"] = {policy: measured(policy) for policy in policies}
    return numbers
