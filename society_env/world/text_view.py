"""The text rendering of an observation (language option): the same view as the numeric one, in words.

Offsets are written ``(dx,dy)``: ``dx > 0`` is east, ``dy > 0`` is south, relative to the reader.
Example::

    agent_3 | step 57/3000 | energy 43 | age 20/100 | family agent_0
    Food (dx,dy)=value: (+1,-2)=10 (0,+3)=7
    Agents: agent_5 (-1,0) energy 30 kin; agent_9 (+4,+2) energy 12
    Heard: agent_5 (-1,0): "food north"

With artifacts (visible ones), three more parts: the names of the artifacts lying in view, what the
agent carries, and the current text of every artifact under it or carried by it::

    Artifacts (dx,dy): "map" (0,0); "law" (+2,-1)
    Carrying: "note"
    Read "map" (by agent_3, v2): food is north of the rock

:func:`render_texts` renders many agents at once; :func:`visible_views` gives what a view lists as data
(the env's ``infos[agent]["view"]``), so that policies never parse the text.
"""

from __future__ import annotations

import functools

import numpy as np

from society_env.world.config import SocietyConfig
from society_env.world.encodings import view_cell_offsets
from society_env.world.names import agent_name
from society_env.world.observations import wrap_pad
from society_env.world.state import WorldState

MAX_FOOD_LISTED = 12
TRUNCATION_MARKER = " [...]"


def _offset(d_col: int, d_row: int) -> str:
    return f"({d_col:+d},{d_row:+d})".replace("+0", "0")


@functools.lru_cache(maxsize=16)
def _view_tables(radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Listing orders of the view cells (row-major indices) and their offset labels, for ``radius``.

    Food is listed nearest first by (Chebyshev distance, Manhattan distance), agents by Chebyshev
    distance; ties keep row-major order. Returns (food order, agent order, food labels " (dx,dy)=",
    agent labels "(dx,dy)"), the labels as object arrays in listing order.
    """
    size = 2 * radius + 1
    d_row, d_col = view_cell_offsets(radius, np.arange(size * size))
    chebyshev = np.maximum(np.abs(d_row), np.abs(d_col))
    food_order = np.argsort(chebyshev * 100 + np.abs(d_row) + np.abs(d_col), kind="stable")
    agent_order = np.argsort(chebyshev, kind="stable")
    labels = np.array([_offset(int(c), int(r)) for r, c in zip(d_row, d_col)], dtype=object)
    return food_order, agent_order, " " + labels[food_order] + "=", labels[agent_order]


_SMALL_INTS = np.array([str(i) for i in range(1024)], dtype=object)


def _ordered_views(
    array: np.ndarray, views: np.ndarray | None, order: np.ndarray, state: WorldState, config: SocietyConfig,
    slots: np.ndarray,
) -> np.ndarray:
    """(n, cells) view windows of ``array`` with the cells in ``order`` (gathered directly when not given)."""
    if views is not None:
        return views.reshape(slots.size, -1)[:, order]
    r, size = config.view_radius, config.view_size
    padded = wrap_pad(array, r)
    width = padded.shape[1]
    offsets = (order // size) * width + order % size
    return padded.ravel()[(state.position[slots, 0] * width + state.position[slots, 1])[:, None] + offsets]


def _listed(mask: np.ndarray, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat index and row of the True entries of the (rows, columns) ``mask`` in row-major order, keeping
    the first ``limit`` of each row (all without a limit), and the number of True entries per row."""
    flat = np.flatnonzero(mask)
    row = flat // mask.shape[1]
    counts = np.bincount(row, minlength=mask.shape[0])
    if limit is not None and flat.size and counts.max() > limit:
        keep = np.arange(flat.size) - np.repeat(np.cumsum(counts) - counts, counts) < limit
        flat, row = flat[keep], row[keep]
    return flat, row, counts


def _interleave(*columns: np.ndarray) -> list:
    """[a0, b0, c0, a1, b1, c1, ...] from equally long columns (object arrays or lists)."""
    out = np.empty(len(columns[0]) * len(columns), dtype=object)
    for k, column in enumerate(columns):
        out[k :: len(columns)] = column
    return out.tolist()


def render_texts(
    state: WorldState,
    config: SocietyConfig,
    slots: np.ndarray,
    occupant_views: np.ndarray | None = None,
    food_views: np.ndarray | None = None,
) -> list[str]:
    """Text observations of ``slots`` (one string each); the (n, size, size) occupant and food windows
    are gathered from ``state`` unless given.

    Everything but the final string assembly is done for all slots at once: which cells are listed and
    in which order, as flat lists of string fragments (labels, names, values) joined per viewer. Each
    agent seen is formatted once, however many agents see it.
    """
    slots = np.asarray(slots, dtype=np.int64)
    n = slots.size
    if n == 0:
        return []
    food_order, agent_order, food_labels, agent_labels = _view_tables(config.view_radius)
    cells = config.view_size**2

    # Food: the MAX_FOOD_LISTED nearest tiles of each view, " (dx,dy)=value" each.
    food = _ordered_views(state.food, food_views, food_order, state, config, slots)
    flat, viewer, food_count = _listed(food != 0, MAX_FOOD_LISTED)
    values = food.ravel()[flat]
    if values.size and 0 <= values.min() and values.max() < _SMALL_INTS.size:
        value_text = _SMALL_INTS[values]
    else:
        value_text = [str(v) for v in values.tolist()]
    food_parts = _interleave(food_labels[flat - viewer * cells], value_text)

    # Other agents, nearest first: "agent_<id> (dx,dy) energy <e>[ kin]", separated by "; ".
    occupant = _ordered_views(state.occupant, occupant_views, agent_order, state, config, slots)
    flat, viewer, seen_count = _listed((occupant >= 0) & (occupant != slots[:, None]))
    others = occupant.ravel()[flat]
    where = agent_labels[flat - viewer * cells]
    first = np.ones(flat.size, dtype=bool)  # the first agent listed in its viewer's line
    first[1:] = viewer[1:] != viewer[:-1]
    seen = np.zeros(state.status.shape[0], dtype=bool)
    seen[others] = True
    unique = np.flatnonzero(seen)  # every agent seen, formatted once
    unique_list = unique.tolist()
    which = np.empty(seen.size, dtype=np.int64)
    which[unique] = np.arange(unique.size)
    which = which[others]
    name = np.array([agent_name(o) + " " for o in unique_list], dtype=object)
    energy_text = np.array([f" energy {e}" for e in state.energy[unique].tolist()], dtype=object)
    tails = np.stack([energy_text, energy_text + " kin"], axis=1)  # [not kin, kin]
    kin = (state.lineage[others] == state.lineage[slots][viewer]).astype(np.intp)
    agent_parts = _interleave(np.where(first, name[which], ("; " + name)[which]), where, tails[which, kin])

    # What they broadcast last step: "agent_<id> (dx,dy): "text"" or ": token <t>", separated by " | ".
    text_message = state.text_message
    said = np.array(
        [f': "{text}"' if (text := text_message[o]) else (f": token {t}" if t else "")
         for o, t in zip(unique_list, state.message[unique].tolist())],
        dtype=object,
    )
    speaks = (said != "")[which]
    heard_viewer = viewer[speaks]
    first = np.ones(heard_viewer.size, dtype=bool)
    first[1:] = heard_viewer[1:] != heard_viewer[:-1]
    speaker = which[speaks]
    heard_parts = _interleave(np.where(first, name[speaker], (" | " + name)[speaker]), where[speaks], said[speaker])

    food_ends = (2 * np.cumsum(np.minimum(food_count, MAX_FOOD_LISTED))).tolist()
    agent_ends = (3 * np.cumsum(seen_count)).tolist()
    heard_ends = (3 * np.cumsum(np.bincount(heard_viewer, minlength=n))).tolist()
    header = f" | step {state.step}/{config.max_steps} | energy "
    lifespan, limit = config.lifespan, config.text_max_chars
    if config.artifacts and config.artifact_visible:
        artifact_parts = iter(artifact_lines(state, config, slots))
    else:
        artifact_parts = iter(("",) * n)
    texts = []
    food_start = agent_start = heard_start = 0
    for slot, energy, age, lineage, count, food_end, agent_end, heard_end in zip(
        slots.tolist(), state.energy[slots].tolist(), state.age[slots].tolist(), state.lineage[slots].tolist(),
        food_count.tolist(), food_ends, agent_ends, heard_ends,
    ):
        if count > MAX_FOOD_LISTED:
            food_line = f"Food (dx,dy)=value:{''.join(food_parts[food_start:food_end])} (+{count - MAX_FOOD_LISTED} more)"
        elif count:
            food_line = "Food (dx,dy)=value:" + "".join(food_parts[food_start:food_end])
        else:
            food_line = "Food: none visible"
        agents_line = "".join(agent_parts[agent_start:agent_end]) if agent_end > agent_start else "none visible"
        heard_line = "".join(heard_parts[heard_start:heard_end]) if heard_end > heard_start else "nothing"
        text = (
            f"{agent_name(slot)}{header}{energy} | age {age}/{lifespan} | family {agent_name(lineage)}\n"
            f"{food_line}\nAgents: {agents_line}\nHeard: {heard_line}{next(artifact_parts)}"
        )
        if len(text) > limit:
            text = text[: limit - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER
        texts.append(text)
        food_start, agent_start, heard_start = food_end, agent_end, heard_end
    return texts


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ").replace("\t", " ")


def _artifact_listing(state: WorldState, config: SocietyConfig, slots: np.ndarray) -> list[tuple[list, list]]:
    """Per slot: the artifacts lying in view as (artifact, dx, dy), nearest first (then row-major, then by
    id), and the artifacts it carries."""
    r, height, width = config.view_radius, config.height, config.width
    ground = [a for a in state.artifacts.values() if a.holder < 0]
    carried: dict[int, list] = {}
    for artifact in state.artifacts.values():
        if artifact.holder >= 0:
            carried.setdefault(artifact.holder, []).append(artifact)
    if ground:
        positions = state.position[slots]
        d_row = (np.array([a.row for a in ground])[None, :] - positions[:, :1] + r) % height - r
        d_col = (np.array([a.col for a in ground])[None, :] - positions[:, 1:] + r) % width - r
        visible = (np.abs(d_row) <= r) & (np.abs(d_col) <= r)
        distance = np.maximum(np.abs(d_row), np.abs(d_col))
    listing = []
    for k, slot in enumerate(slots.tolist()):
        seen = []
        if ground:
            for j in sorted(np.flatnonzero(visible[k]).tolist(), key=lambda j: (distance[k, j], d_row[k, j], d_col[k, j])):
                seen.append((ground[j], int(d_col[k, j]), int(d_row[k, j])))
        listing.append((seen, carried.get(slot, [])))
    return listing


def artifact_lines(state: WorldState, config: SocietyConfig, slots: np.ndarray) -> list[str]:
    """The artifact part of each slot's text (starting with a line break): names in view (nearest first,
    then row-major, then by id), names carried, and the current text of those under and carried by it."""
    lines = []
    for seen, held in _artifact_listing(state, config, slots):
        here = [artifact for artifact, dx, dy in seen if dx == 0 and dy == 0]
        part = "\nArtifacts (dx,dy): " + ("; ".join(f'"{a.name}" {_offset(dx, dy)}' for a, dx, dy in seen) if seen else "none visible")
        part += "\nCarrying: " + ("; ".join(f'"{a.name}"' for a in held) if held else "nothing")
        for artifact in here + held:
            part += f'\nRead "{artifact.name}" (by {agent_name(artifact.creator)}, v{artifact.version}): {_one_line(artifact.text)}'
        lines.append(part)
    return lines


def visible_views(state: WorldState, config: SocietyConfig, slots: np.ndarray) -> list[dict[str, list]]:
    """What each slot's text view lists, as data (``infos[agent]["view"]`` with the language option):
    ``agents``, the other agents in view as ``(name, dx, dy, energy)``, nearest first; ``heard``, what
    those of them who spoke last step said, as ``(name, dx, dy, text)`` (``token <t>`` for a numeric
    message), in the same order, as the text's ``Heard:`` line; with visible
    artifacts also ``artifacts``, those lying in view as ``(name, dx, dy)`` nearest first, and
    ``carrying``, the names of those the agent holds. Policies read this instead of parsing the text."""
    slots = np.asarray(slots, dtype=np.int64)
    if slots.size == 0:
        return []
    r, size = config.view_radius, config.view_size
    _, agent_order, _, _ = _view_tables(r)
    occupant = _ordered_views(state.occupant, None, agent_order, state, config, slots)
    flat, viewer, _ = _listed((occupant >= 0) & (occupant != slots[:, None]))
    cell = agent_order[flat % (size * size)]
    d_row, d_col = view_cell_offsets(r, cell)
    others = occupant.ravel()[flat]
    views: list[dict[str, list]] = [{"agents": [], "heard": []} for _ in range(slots.size)]
    for k, other, dx, dy, energy in zip(viewer.tolist(), others.tolist(), d_col.tolist(), d_row.tolist(),
                                        state.energy[others].tolist()):
        views[k]["agents"].append((agent_name(other), dx, dy, energy))
        said = state.text_message[other] or (f"token {state.message[other]}" if state.message[other] else "")
        if said:
            views[k]["heard"].append((agent_name(other), dx, dy, said))
    if config.artifacts and config.artifact_visible:
        for view, (seen, carried) in zip(views, _artifact_listing(state, config, slots)):
            view["artifacts"] = [(artifact.name, dx, dy) for artifact, dx, dy in seen]
            view["carrying"] = [artifact.name for artifact in carried]
    return views
