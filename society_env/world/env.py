"""
# Society

## Description
A population of agents lives on a toroidal grid. Each agent forages for food (the only resource),
loses energy every step, can give energy to or take energy from agents it sees, reproduces
asexually (its child inherits a mutated personality vector), broadcasts one message per step, and
dies of hunger or old age; its corpse becomes food. The defaults reproduce TerraLingua's published
core setting (50x50 torus, 20 founders, one clustered food zone). Births make new agents appear in
``env.agents`` during the episode, each with a never-used id from the fixed pool ``possible_agents``.
See ``docs/world.md`` for every rule and number.

## Action Space
``MultiDiscrete([8, view_size**2, len(transfer_amounts), message_vocab_size])``:

| index | meaning |
|---|---|
| 0 | kind: 0 stay, 1 north, 2 south, 3 west, 4 east, 5 give, 6 take, 7 reproduce |
| 1 | target of give/take: a cell of the view, ``(d_row + r) * view_size + (d_col + r)`` |
| 2 | amount index into ``transfer_amounts`` (default 1, 5, 10, 20 energy) |
| 3 | message token broadcast this step (0 = silent) |

With ``language=True`` the action is ``{"action": <the above>, "message": Text}`` (printable ASCII).
With ``language=True`` and ``artifacts=True`` it also has ``"artifact": {"kind", "name", "text", "lifespan",
"target"}`` (``society_env.world.artifacts.artifact_action``): kind 0 none, 1 create, 2 pick up, 3 drop,
4 give (to the agent on view cell ``target``), 5 modify, 6 destroy; done in the same step as the rest.

## Observation Space
``Box(float32, (view_size**2 * 6 + 12,))``: the egocentric view (row, column, channel) with channels
food value / food_value, agent present, agent energy / initial_energy, same family (kin), message
token heard, artifacts on the cell (plus those carried by the agent there); then own energy / initial_energy, age / lifespan, row / height, column / width and the
8 genome entries. With ``language=True``: ``{"observation": <the above>, "text": Text}``, the text
being the same view in words (``society_env.world.text_view``), with artifacts: their names in view, and
the text of those under and carried by the agent.

## Rewards
``shaped`` (default, TerraLingua): +value eaten, +0.5/unit to a giver and +1/unit to its receiver,
+1/unit to a taker and -2/unit to its victim, -0.5 for a blocked move, -100 on death.
``survival``: +1 for every step an agent ends alive.
``reward_sharing`` says who is credited: ``individual`` (default) the agent alone; ``lineage`` also each
living ancestor up to ``lineage_generations`` (3) generations up, times ``lineage_discount`` (0.5) per
generation; ``population`` every agent of the step gets the step's mean (``society_env.world.rewards.SHARING``).

## Starting State
``num_founders`` agents on distinct random cells with ``initial_energy`` and random personalities;
``initial_food`` tiles drawn from the food density (one Gaussian zone at a random centre, or uniform).

## Episode End
An agent is terminated in the step it dies (starvation or old age) and leaves ``env.agents``.
After ``max_steps`` steps all living agents are truncated. The episode also ends when nobody lives.
With ``fixed_slots=True`` every slot stays in ``env.agents`` until the episode ends; ``infos[a]["alive"]``
says which slots live.

## Arguments
``society_env.parallel_env(preset="default", render_mode=None, **overrides)``: ``preset`` is one of
``default``, ``small``, ``large``, the 9x9 foraging drills ``forage`` and ``forage_hint``, or one of the
eight TerraLingua conditions (``core``, ``long_memory``, ``abundant``, ``artifact_cost``, ``creative``,
``inert``, ``no_motivation``, ``no_personality``); overrides are any :class:`SocietyConfig` field.
``render_mode`` is ``"human"`` (prints the ANSI frame after every reset and step), ``"ansi"`` or
``"rgb_array"``. ``num_threads`` (default: the cores available to the process) splits the observation
loops of worlds with 8192 or more living agents over threads; any value gives the same observations and
world.
``max_cycles`` (PettingZoo's name) is accepted for ``max_steps``. The versioned module
``society_env.society_v2`` has the same ``env``, ``parallel_env`` and ``raw_env``. For many worlds as
arrays (no dicts, no per-agent objects), see ``society_env.world.vector.SocietyVectorEnv``.

## Version History
* v0: initial release.
* v1: artifacts (config ``artifacts``; the language action's ``artifact`` entry); the numeric observation
  gains a sixth view channel (artifacts), so its size is ``view_size**2 * 6 + 12``; ``infos`` gain
  ``artifact_failed`` and ``artifacts``. The numeric action space is unchanged. Metadata name
  ``society_v1`` (was ``society_v0``), ``render_mode="human"``, ``max_cycles`` alias; with
  ``language=True`` a living agent's ``infos`` also carry ``view``, the visible agents, messages heard and
  artifacts of its text view as data (docs/world.md, Infos).
* v2: the same rules, spaces, rewards and infos; only the random stream changed. Regrowing food is
  drawn by rejection from the whole grid's density (``state.spawn_food_cells``: O(food drawn) instead
  of O(cells)), so the same seed gives another trajectory than in v1. ``state_dict()`` version 2 (the
  world keeps the cumulative food density). Recordings say which world made them; replaying a v1
  recording is refused with an error saying so. The ``reward_sharing`` option (``lineage``,
  ``population``) came later within v2: its default, ``individual``, is every earlier v2 run.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import sys
from typing import Any

import numpy as np
from pettingzoo import ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec_wrapper
from pettingzoo.utils.wrappers import OrderEnforcingWrapper

from society_env.world import render as rendering
from society_env.world.artifacts import ARTIFACT_ACTION_KEYS, NUM_ARTIFACT_KINDS, NO_ARTIFACT_ACTION, ArtifactCommand
from society_env.world.config import RETIRED_FIELDS, SocietyConfig, make_config
from society_env.world.encodings import ACTION_FIELDS, ACTION_VECTOR_LENGTH, DEATH_CAUSES, FAILURE_REASONS, GIVE_TRANSFER
from society_env.world.names import agent_names
from society_env.world.observations import (
    PRINTABLE_CHARSET,
    build_spaces,
    channel_grid,
    load_parallel_loops,
    observation_size,
    observation_scratch,
    write_observations,
)
from society_env.world.outcome import ATE, BLOCKED, BORN, DIED, GAVE, TOOK, Artifact, StepOutcome
from society_env.world.rules import Actions, advance_world, episode_end
from society_env.world.state import ALIVE, WORLD_VERSION, WorldState, initial_state, regrowth_buffers_for
from society_env.world.text_view import render_texts, visible_views
from society_env.world.threads import check_threads


_FAILURE_NAMES = np.array(FAILURE_REASONS, dtype=object)  # failure codes -> reasons, in one gather


class SocietyEnv(ParallelEnv):
    """The society world as a PettingZoo ``ParallelEnv`` (see the module docstring)."""

    metadata = {"name": WORLD_VERSION, "render_modes": ["human", "ansi", "rgb_array"], "render_fps": 10,
                "is_parallelizable": True}

    def __init__(self, config: SocietyConfig | None = None, render_mode: str | None = None,
                 num_threads: int | None = None):
        self.config = config if config is not None else SocietyConfig()
        self.num_threads = check_threads(num_threads)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; choose one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.possible_agents = agent_names(range(self.config.max_agents))
        self._index = {name: i for i, name in enumerate(self.possible_agents)}
        self._name_array = np.array(self.possible_agents, dtype=object)  # slots -> names in one gather
        self._observation_space, self._action_space = build_spaces(self.config)
        # Reused memory: the padded channel and lineage grids of every step, and recent observation arrays.
        self._scratch: dict[str, Any] = {"padded": observation_scratch(self.config)}
        self._set_agents(np.empty(0, dtype=np.int64))
        self.world: WorldState | None = None
        self._rng: np.random.Generator | None = None
        self.last_outcome: StepOutcome | None = None

    # ---- spaces -----------------------------------------------------------------------------
    def observation_space(self, agent: str):
        return self._observation_space

    def action_space(self, agent: str):
        return self._action_space

    @functools.cached_property
    def state_space(self):
        from gymnasium import spaces

        return spaces.Box(0.0, np.inf, (self.config.height, self.config.width, 4), np.float32)

    # ---- episode ------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None):
        """Start an episode. ``seed`` seeds the env's only random generator; ``None`` continues it."""
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        self.world = initial_state(self.config, self._rng)
        self.last_outcome = None
        self._episode_over = False
        load_parallel_loops(self.world, self.config, self._scratch["padded"], self.num_threads)
        slots = self._listed_slots()
        self._set_agents(slots)
        observations = self._observations(slots)
        infos = {name: self._base_info(i) for name, i in zip(self.agents, slots)}
        self._add_views(infos, slots)
        if self.render_mode == "human":
            self.render()
        return observations, infos

    def step(self, actions: dict[str, Any]):
        if self.world is None:
            raise RuntimeError("call reset() before step()")
        if self._episode_over:
            raise RuntimeError("the episode is over: call reset() to start a new one")
        parsed = self.parse_actions(actions)
        before = self.world.status == ALIVE
        if "regrowth" not in self._scratch:  # kept across steps (kernels.RegrowthBuffers say why)
            self._scratch["regrowth"] = regrowth_buffers_for(self.config)
        outcome = advance_world(self.world, parsed, self.config, self._rng, self._scratch["regrowth"])
        self.last_outcome = outcome
        world, config = self.world, self.config

        alive = world.status == ALIVE
        self._episode_over, out_of_time = episode_end(world, config)

        if config.fixed_slots:
            reported = np.arange(config.max_agents)
        else:
            reported = np.flatnonzero(before | alive)  # the living, the newly dead, the newborn
        reported_list = reported.tolist()
        names = self._name_array[reported].tolist()
        observations = self._observations(reported, names)
        rewards = dict(zip(names, outcome.rewards[reported].tolist()))
        infos = self._infos(reported, outcome, names, reported_list)
        self._add_views(infos, reported)

        if config.fixed_slots:
            ended = self._episode_over
            terminations = dict.fromkeys(names, ended and not out_of_time)
            truncations = dict.fromkeys(names, ended and out_of_time)
        else:
            # Everyone False, then the few who died (or, at the time limit, everyone alive) True.
            terminations = dict.fromkeys(names, False)
            terminations.update(dict.fromkeys(self._name_array[outcome.death_slot].tolist(), True))
            truncations = dict.fromkeys(names, False)
            if out_of_time:
                truncations.update(dict.fromkeys(self._name_array[np.flatnonzero(alive)].tolist(), True))

        if self._episode_over:
            self._set_agents(np.empty(0, dtype=np.int64))
        elif config.fixed_slots:
            self._set_agents(reported, names)
        else:
            self._set_agents(np.flatnonzero(alive))
        if self.render_mode == "human":
            self.render()
        return observations, rewards, terminations, truncations, infos

    def _set_agents(self, slots: np.ndarray, names: list[str] | None = None) -> None:
        """``self.agents`` = the names of ``slots``, remembered with the slots (and a private copy of the
        list, in case the caller edits ``env.agents``) so that :meth:`parse_actions` can skip the lookup."""
        self.agents = self._name_array[slots].tolist() if names is None else list(names)
        self._listed = list(self.agents)
        self._agent_slots = slots

    def _listed_slots(self) -> np.ndarray:
        if self.config.fixed_slots:
            return np.arange(self.config.max_agents)
        return np.flatnonzero(self.world.status == ALIVE)

    # ---- actions -----------------------------------------------------------------------------
    def parse_actions(self, actions: dict[str, Any]) -> Actions:
        """Validate ``actions`` and turn them into arrays; raises ``ValueError`` naming the agent."""
        if not isinstance(actions, dict):
            raise ValueError(f"actions must be a dict of agent -> action, got {type(actions).__name__}")
        config = self.config
        parsed = Actions.noop(config.max_agents)
        names = list(actions)
        vectors = list(actions.values())
        index = self._index
        try:
            # The usual case, actions keyed by env.agents in order, needs no lookup per agent.
            slots = self._agent_slots if names == self._listed else np.array([index[name] for name in names], dtype=np.int64)
        except KeyError:
            slots = np.array([index.get(name, -1) for name in names], dtype=np.int64)
            raise ValueError(f"unknown agent {names[int(np.argmax(slots < 0))]!r}: not one of possible_agents") from None
        inactive = self.world.status[slots] != ALIVE
        if inactive.any():
            if not config.fixed_slots:
                bad = int(np.argmax(inactive))
                state_name = "dead" if self.world.status[slots[bad]] else "not born yet"
                raise ValueError(f"agent {names[bad]!r} is {state_name} and cannot act")
            keep = np.flatnonzero(~inactive).tolist()  # inactive slots' actions are ignored
            names, vectors, slots = [names[i] for i in keep], [vectors[i] for i in keep], slots[keep]
        if config.language:
            text = parsed.text = [""] * config.max_agents
            if config.artifacts:
                parsed.artifact = self._artifact_commands(names, vectors, slots)
            messages = self._plain_messages(vectors)
            if messages is not None:  # the common case, checked in bulk
                vectors = [action["action"] for action in vectors]
                for slot, message in zip(slots.tolist(), messages):
                    text[slot] = message
            else:  # check agent by agent, naming the first problem
                for k, (name, action) in enumerate(zip(names, vectors)):
                    allowed = {"action", "message", "artifact"} if config.artifacts else {"action", "message"}
                    if not isinstance(action, dict) or not {"action", "message"} <= set(action) <= allowed:
                        raise ValueError(f"agent {name!r}: language actions are dicts with keys 'action' and 'message'"
                                         f"{' (and optionally artifact)' if config.artifacts else ''}, got {action!r}")
                    self._check_message(name, action["message"])
                    text[int(slots[k])] = action["message"]
                    vectors[k] = action["action"]
        if not names:
            return parsed
        matrix = self._action_matrix(names, vectors)
        parsed.acting[slots] = True
        parsed.kind[slots], parsed.target[slots], parsed.amount[slots], parsed.message[slots] = matrix.T
        return parsed

    def _action_matrix(self, names: list[str], vectors: list[Any]) -> np.ndarray:
        """Stack the action vectors and check them all at once; diagnose per agent only on failure."""
        try:
            matrix = np.asarray(vectors)
        except ValueError:
            matrix = None
        if (
            matrix is None
            or matrix.shape != (len(names), ACTION_VECTOR_LENGTH)
            or not np.issubdtype(matrix.dtype, np.integer)
            or ((matrix < 0) | (matrix >= self._action_vector_sizes)).any()
        ):
            for name, vector in zip(names, vectors):
                self._check_vector(name, vector)
        return matrix.astype(np.int64, copy=False)

    def _check_vector(self, agent: str, action: Any) -> np.ndarray:
        array = np.asarray(action)
        if array.shape != (ACTION_VECTOR_LENGTH,):
            raise ValueError(f"agent {agent!r}: action must have shape ({ACTION_VECTOR_LENGTH},) "
                             f"({', '.join(ACTION_FIELDS)}), got {action!r}")
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"agent {agent!r}: action must contain integers, got dtype {array.dtype} ({action!r})")
        nvec = self._action_vector_sizes
        bad = (array < 0) | (array >= nvec)
        if bad.any():
            field = ("kind", "target", "amount", "message")[int(np.argmax(bad))]
            raise ValueError(f"agent {agent!r}: action {field} out of range in {array.tolist()} (sizes {nvec.tolist()})")
        return array

    @functools.cached_property
    def _action_vector_sizes(self) -> np.ndarray:
        space = self._action_space["action"] if self.config.language else self._action_space
        return space.nvec.astype(np.int64)

    def _plain_messages(self, actions: list[Any]) -> list[str] | None:
        """The messages when every action is a well-formed language action whose message is short and
        plain printable ASCII (" " to "~"); otherwise ``None`` (the caller then checks action by action)."""
        keys = 3 if self.config.artifacts else 2
        if not all(type(a) is dict and len(a) in (2, keys) and "action" in a and "message" in a for a in actions):
            return None
        messages = [action["message"] for action in actions]
        try:
            joined = "".join(messages)  # TypeError unless all are str
        except TypeError:
            return None
        if not (joined.isascii() and joined.isprintable()):
            return None
        if joined and max(map(len, messages)) > self.config.message_max_chars:
            return None
        return messages

    def _artifact_commands(self, names: list[str], actions: list[Any], slots: np.ndarray) -> dict[int, ArtifactCommand]:
        """Check the optional ``artifact`` entries (raising ``ValueError`` naming the agent, before anything
        changes) and turn the real ones (kind != 0) into commands by slot."""
        commands = {}
        config = self.config
        for name, action, slot in zip(names, actions, slots.tolist()):
            entry = action.get("artifact") if isinstance(action, dict) else None
            if entry is None:
                continue
            if not isinstance(entry, dict) or not set(entry) <= ARTIFACT_ACTION_KEYS or "kind" not in entry:
                raise ValueError(f"agent {name!r}: the artifact action must be a dict with 'kind' and optionally "
                                 f"{sorted(ARTIFACT_ACTION_KEYS - {'kind'})}, got {entry!r}")
            numbers = {"kind": NUM_ARTIFACT_KINDS, "lifespan": len(config.artifact_lifespans), "target": config.view_size**2}
            for key, size in numbers.items():
                value = entry.get(key, 0)
                if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 0 <= value < size:
                    raise ValueError(f"agent {name!r}: artifact {key} must be an int in [0, {size}), got {value!r}")
            for key in ("name", "text"):
                value = entry.get(key, "")
                if not isinstance(value, str) or len(value) > config.artifact_action_max_chars or set(value) - PRINTABLE_CHARSET:
                    raise ValueError(f"agent {name!r}: artifact {key} must be printable text of at most "
                                     f"{config.artifact_action_max_chars} characters, got {value!r:.80}")
            if entry["kind"] != NO_ARTIFACT_ACTION:
                commands[slot] = ArtifactCommand(int(entry["kind"]), entry.get("name", ""), entry.get("text", ""),
                                                 int(entry.get("lifespan", 0)), int(entry.get("target", 0)))
        return commands

    def _check_message(self, agent: str, message: Any) -> None:
        if not isinstance(message, str):
            raise ValueError(f"agent {agent!r}: message must be a str, got {type(message).__name__}")
        if len(message) > self.config.message_max_chars:
            raise ValueError(f"agent {agent!r}: message is {len(message)} characters, the limit is {self.config.message_max_chars}")
        bad = set(message) - PRINTABLE_CHARSET
        if bad:
            raise ValueError(f"agent {agent!r}: message contains non-printable characters {sorted(bad)!r}")

    # ---- observations and infos ---------------------------------------------------------------
    def _observations(self, slots: np.ndarray, names: list[str] | None = None) -> dict[str, Any]:
        world, config = self.world, self.config
        numeric = self._observation_array(slots.size)
        write_observations(world, config, slots, numeric, np.arange(slots.size), self._scratch.get("padded"),
                           self.num_threads)
        if config.fixed_slots:
            numeric[world.status[slots] != ALIVE] = 0.0
        if names is None:
            possible = self.possible_agents
            names = [possible[i] for i in slots.tolist()]
        if not config.language:
            return dict(zip(names, numeric))
        if config.fixed_slots:
            speaking = world.status[slots] == ALIVE
            texts = [""] * slots.size
            for k, text in zip(np.flatnonzero(speaking).tolist(), render_texts(world, config, slots[speaking])):
                texts[k] = text
        else:
            texts = render_texts(world, config, slots)
        return {name: {"observation": row, "text": text} for name, row, text in zip(names, numeric, texts)}

    def _observation_array(self, rows: int) -> np.ndarray:
        """A (rows, observation_size) float32 array for this step's observations: the memory of one returned
        two or more steps ago if nothing outside the env refers to it (or to any view of it) any more, else
        new memory. Reusing it saves faulting in fresh pages for every step's observations (20 MB at 5000
        agents); an observation the caller still holds is never overwritten."""
        spare = self._scratch.setdefault("observations", [])
        # References to a free buffer: the list, ``buffer`` here and getrefcount's argument.
        free = next((b for b in spare if b.shape[0] >= rows and sys.getrefcount(b) == 3), None)
        if free is None:  # with room for a growing population: each step's new rows would fault in fresh pages
            free = np.empty((min(self.config.max_agents, rows + rows // 8 + 16), observation_size(self.config)),
                            dtype=np.float32)
        spare[:] = [free] + [b for b in spare if b is not free][:2]  # this step's, the previous step's, one more
        return free[:rows]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_scratch"] = {"padded": self._scratch.get("padded")}  # the other buffers are not state
        return state

    def _add_views(self, infos: dict[str, dict[str, Any]], slots: np.ndarray) -> None:
        """With the language option: ``infos[agent]["view"]``, what the living agent's text lists, as data
        (:func:`society_env.world.text_view.visible_views`)."""
        if not self.config.language:
            return
        living = slots[self.world.status[slots] == ALIVE]
        for slot, view in zip(living.tolist(), visible_views(self.world, self.config, living)):
            infos[self.possible_agents[slot]]["view"] = view

    def _base_info(self, slot: int) -> dict[str, Any]:
        world = self.world
        return {"alive": bool(world.status[slot] == ALIVE), "energy": int(world.energy[slot]), "age": int(world.age[slot])}

    def _infos(
        self, slots: np.ndarray, outcome: StepOutcome, names: list[str] | None = None, slot_list: list[int] | None = None
    ) -> dict[str, dict[str, Any]]:
        world, possible = self.world, self.possible_agents
        if slot_list is None:
            slot_list = slots.tolist()
        if names is None:
            names = [possible[s] for s in slot_list]
        alive = (world.status[slots] == ALIVE).tolist()
        energy = world.energy[slots].tolist()
        age = world.age[slots].tolist()
        records = [{"alive": a, "energy": e, "age": g} for a, e, g in zip(alive, energy, age)]
        infos = dict(zip(names, records))
        by_slot = dict(zip(slot_list, records))
        event = by_slot.get

        ate = np.flatnonzero(outcome.ate)
        for slot, value in zip(ate.tolist(), outcome.ate[ate].tolist()):
            if (info := event(slot)) is not None:
                info[ATE] = value
        for slot in np.flatnonzero(outcome.blocked).tolist():
            if (info := event(slot)) is not None:
                info[BLOCKED] = True
        failed = np.flatnonzero(outcome.failed)
        for slot, reason in zip(failed.tolist(), _FAILURE_NAMES[outcome.failed[failed]].tolist()):
            if (info := event(slot)) is not None:
                info["failed"] = reason
        for kind, source, dest, amount in zip(
            outcome.transfer_kind.tolist(), outcome.transfer_source.tolist(),
            outcome.transfer_dest.tolist(), outcome.transfer_amount.tolist(),
        ):
            if kind == GIVE_TRANSFER:
                event(source).setdefault(GAVE, []).append((possible[dest], amount))
                event(dest).setdefault("received", []).append((possible[source], amount))
            else:
                event(dest).setdefault(TOOK, []).append((possible[source], amount))
                event(source).setdefault("lost", []).append((possible[dest], amount))
        for parent, child in zip(outcome.birth_parent.tolist(), outcome.birth_child.tolist()):
            event(parent).setdefault("children", []).append(possible[child])
            event(child)[BORN] = possible[parent]
        for slot, cause in zip(outcome.death_slot.tolist(), outcome.death_cause.tolist()):
            event(slot)[DIED] = DEATH_CAUSES[cause]
        for slot, reason in outcome.artifact_failed.items():
            if (info := event(slot)) is not None:
                info["artifact_failed"] = reason
        for record in outcome.artifact_events:
            if record["agent"] is not None and (info := infos.get(record["agent"])) is not None:
                info.setdefault("artifacts", []).append(record)
        return infos

    # ---- global state, rendering --------------------------------------------------------------
    def state(self) -> np.ndarray:
        """Global (height, width, 4) float32 array: food value, agent present, agent energy, message token."""
        if self.world is None:
            raise RuntimeError("call reset() before state()")
        grid = channel_grid(self.world, self.config)
        out = np.empty((self.config.height, self.config.width, 4), dtype=np.float32)
        out[..., 0] = self.world.food
        out[..., 1] = grid[..., 1]
        occupied = self.world.occupant >= 0
        out[..., 2] = 0.0
        out[occupied, 2] = self.world.energy[self.world.occupant[occupied]]
        out[..., 3] = grid[..., 4]
        return out

    def render(self):
        """``ansi``: the frame as a string; ``rgb_array``: an (H, W, 3) uint8 image; ``human``: prints the
        ANSI frame (done automatically after every reset and step) and returns None."""
        if self.world is None:
            raise RuntimeError("call reset() before render()")
        if self.render_mode == "human":
            print(rendering.render_ansi(self.world, self.config), flush=True)
            return None
        if self.render_mode == "ansi":
            return rendering.render_ansi(self.world, self.config)
        if self.render_mode == "rgb_array":
            return rendering.render_rgb(self.world, self.config)
        return None

    def close(self) -> None:
        pass

    # ---- saving and restoring ----------------------------------------------------------------
    STATE_FORMAT = "society-env-state"
    STATE_VERSION = 2  # 2: the world gained food_cdf (society_v2)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this episode exactly: the config, the world state (a deep copy:
        numpy arrays and plain Python values), the random generator's state and the living agents. Plain
        data, so ``pickle``, ``torch.save`` or ``copy.deepcopy`` keep it; :meth:`load_state_dict` restores
        it, in this env or another one with the same config (e.g. to branch or search from a saved state)."""
        if self.world is None:
            raise RuntimeError("call reset() before state_dict()")
        world = self.world.copy()
        fields = {f.name: getattr(world, f.name) for f in dataclasses.fields(world) if f.name != "artifacts"}
        return {
            "format": self.STATE_FORMAT, "version": self.STATE_VERSION, "config": self.config.to_dict(),
            "world": fields, "artifacts": [dataclasses.asdict(a) for a in world.artifacts.values()],
            "rng": copy.deepcopy(self._rng.bit_generator.state), "agents": list(self.agents),
            "episode_over": self._episode_over,
        }

    def load_state_dict(self, state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict]]:
        """Restore a :meth:`state_dict` (copied: later changes to either side do not leak) and return the
        restored state's ``(observations, infos)``, as :meth:`reset` does, so that an RL loop can go on.
        ``ValueError`` naming the problem for something else than a state dict of this format, or one
        saved with another config."""
        if not isinstance(state, dict) or state.get("format") != self.STATE_FORMAT:
            raise ValueError("not a society-env state dict (expected the output of env.state_dict())")
        if state.get("version") != self.STATE_VERSION:
            raise ValueError(f"state dict version {state.get('version')!r}; this society-env reads {self.STATE_VERSION}")
        mine = self.config.to_dict()
        saved = {key: value for key, value in state["config"].items() if key not in RETIRED_FIELDS}  # older versions'
        differing = sorted(key for key in set(mine) | set(saved) if mine.get(key) != saved.get(key))
        if differing:
            raise ValueError(f"the state dict was saved with another config (fields differ: {', '.join(differing)})")
        artifacts = {a["id"]: Artifact(**{**a, "versions": [tuple(v) for v in a["versions"]],
                                          "holders": [tuple(h) for h in a["holders"]]}) for a in state["artifacts"]}
        self.world = WorldState(**state["world"], artifacts=artifacts).copy()
        generator = getattr(np.random, state["rng"]["bit_generator"])()
        generator.state = copy.deepcopy(state["rng"])
        self._rng = np.random.Generator(generator)
        self._set_agents(np.array([self._index[agent] for agent in state["agents"]], dtype=np.int64))
        self._episode_over = bool(state["episode_over"])
        self.last_outcome = None
        slots = np.array([self._index[agent] for agent in self.agents], dtype=np.int64)
        infos = {agent: self._base_info(slot) for agent, slot in zip(self.agents, slots.tolist())}
        self._add_views(infos, slots)
        return self._observations(slots, self.agents), infos

    # ---- helpers for policies and tools -------------------------------------------------------
    @property
    def observation_size(self) -> int:
        return observation_size(self.config)


def parallel_env(preset: str = "default", render_mode: str | None = None, num_threads: int | None = None,
                 **overrides: Any) -> SocietyEnv:
    """The society world as a PettingZoo ParallelEnv: a preset plus any ``SocietyConfig`` field override."""
    return SocietyEnv(make_config(preset, **overrides), render_mode=render_mode, num_threads=num_threads)


class SocietyAEC(parallel_to_aec_wrapper):
    """PettingZoo's ``parallel_to_aec_wrapper`` for this world, with one fix: a child born in the last step
    of an episode is reported (truncated) without ever having acted, and the wrapper's dead-agent step
    (``del self._actions[agent]``) would raise ``KeyError`` for it."""

    def step(self, action):
        agent = self.agent_selection
        if self.terminations.get(agent) or self.truncations.get(agent):
            self._actions.setdefault(agent, None)
        super().step(action)


def raw_env(preset: str = "default", render_mode: str | None = None, **overrides: Any) -> SocietyAEC:
    """The unwrapped AEC view of the world (no order-enforcing wrapper)."""
    return SocietyAEC(parallel_env(preset, render_mode=render_mode, **overrides))


def env(preset: str = "default", render_mode: str | None = None, **overrides: Any):
    """The AEC view of the world, as PettingZoo's ``parallel_to_aec`` builds it (order-enforcing)."""
    return OrderEnforcingWrapper(raw_env(preset, render_mode=render_mode, **overrides))
