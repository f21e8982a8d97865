"""Analysis of recordings: time series, the interaction graph, families, the report page and the replay viewer.

Data flows one way, recording -> analysis: everything here reads run directories written by
``society-env run`` (complete or killed) and writes files next to them; nothing here drives the world.
``loading`` reads a run once into arrays; ``series``, ``interactions`` and ``lineage`` compute; ``plots``,
``report_html`` and ``viewer`` present; ``report`` ties the report together. networkx and matplotlib
(the ``analysis`` extra) are needed by the report only, and imported where they are used.
"""
