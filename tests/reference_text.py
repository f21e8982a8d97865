"""A slow, obviously-correct per-agent text renderer: the reference the vectorised ``render_texts`` must match.

This is the first version of ``society_env.world.text_view``, one agent at a time, kept as a test oracle.

Offsets are written ``(dx,dy)``: ``dx > 0`` is east, ``dy > 0`` is south, relative to the reader.
Example::

    agent_3 | step 57/3000 | energy 43 | age 20/100 | family agent_0
    Food (dx,dy)=value: (+1,-2)=10 (0,+3)=7
    Agents: agent_5 (-1,0) energy 30 kin; agent_9 (+4,+2) energy 12
    Heard: agent_5 (-1,0): "food north"
"""

from __future__ import annotations

import numpy as np

from society_env.world.config import SocietyConfig
from society_env.world.state import WorldState

MAX_FOOD_LISTED = 12
TRUNCATION_MARKER = " [...]"


def _offset(d_col: int, d_row: int) -> str:
    return f"({d_col:+d},{d_row:+d})".replace("+0", "0")


def render_text(
    state: WorldState,
    config: SocietyConfig,
    slot: int,
    occupant_view: np.ndarray,
    food_view: np.ndarray,
) -> str:
    """Text observation of ``slot`` given its (size, size) occupant and food windows."""
    r = config.view_radius
    lines = [
        f"agent_{slot} | step {state.step}/{config.max_steps} | energy {int(state.energy[slot])}"
        f" | age {int(state.age[slot])}/{config.lifespan} | family agent_{int(state.lineage[slot])}"
    ]

    food_rows, food_cols = np.nonzero(food_view)
    if food_rows.size:
        distance = np.maximum(np.abs(food_rows - r), np.abs(food_cols - r)) * 100 + np.abs(food_rows - r) + np.abs(food_cols - r)
        order = np.argsort(distance, kind="stable")
        shown = [
            f"{_offset(int(food_cols[i]) - r, int(food_rows[i]) - r)}={int(food_view[food_rows[i], food_cols[i]])}"
            for i in order[:MAX_FOOD_LISTED]
        ]
        more = f" (+{order.size - MAX_FOOD_LISTED} more)" if order.size > MAX_FOOD_LISTED else ""
        lines.append("Food (dx,dy)=value: " + " ".join(shown) + more)
    else:
        lines.append("Food: none visible")

    agent_rows, agent_cols = np.nonzero(occupant_view >= 0)
    others, heard = [], []
    own_lineage = state.lineage[slot]
    if agent_rows.size:
        distance = np.maximum(np.abs(agent_rows - r), np.abs(agent_cols - r))
        for i in np.argsort(distance, kind="stable"):
            other = int(occupant_view[agent_rows[i], agent_cols[i]])
            if other == slot:
                continue
            where = _offset(int(agent_cols[i]) - r, int(agent_rows[i]) - r)
            kin = " kin" if state.lineage[other] == own_lineage else ""
            others.append(f"agent_{other} {where} energy {int(state.energy[other])}{kin}")
            text = state.text_message[other]
            if text:
                heard.append(f'agent_{other} {where}: "{text}"')
            elif state.message[other]:
                heard.append(f"agent_{other} {where}: token {int(state.message[other])}")
    lines.append("Agents: " + ("; ".join(others) if others else "none visible"))
    lines.append("Heard: " + (" | ".join(heard) if heard else "nothing"))

    text = "\n".join(lines)
    if len(text) > config.text_max_chars:
        text = text[: config.text_max_chars - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER
    return text
