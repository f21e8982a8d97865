"""The world's compiled code (numba), one job per file; every file compiles with ``cache.kernel``:

* ``cache``: the decorator, whose disk cache is stamped by the sources of this whole folder (a kernel
  compiled against an older callee of another file is never loaded: the module says why and how);
* ``plumbing``: LLVM intrinsics (copies), the torus' modulo, buffers, the Generator as addresses
  (``generator_handle``, ``generator_at``), calling a compiled function directly (``entry_point``);
* ``numpy_algorithms``: NumPy's shuffle, pairwise sum and ``choice`` without replacement, draw for draw;
* ``records``: the named records the kernels take (the world's arrays, a step's actions and record, the
  numbers of each phase);
* ``food_cells``: free cells for food drawn from the spawn density;
* ``phases``: the rule phases, one function each;
* ``observe``: the numeric observation (the channel grid, the views, the features);
* ``step``: a step composed once (``advance``), and the array API's one-call step (``step_and_observe``).

The names below are what the rest of the world uses. Only code of this folder (and numpy, numba, llvmlite)
may be compiled into a kernel: a function or constant of another file would not be covered by the cache's
stamp (``tests/test_kernel_cache.py`` checks the imports).
"""

from society_env.world.kernels.food_cells import RegrowthBuffers, draw_free_cells, regrowth_buffers
from society_env.world.kernels.numpy_algorithms import choice_without_replacement, pairwise_sum, permutation
from society_env.world.kernels.observe import (
    FAMILY_SCAN_LIMIT,
    ObservationSpec,
    OwnState,
    fill_grid,
    fill_grid_parallel,
    gather_views,
    gather_views_parallel,
    group_families,
    observe,
    position_order,
    write_features,
    write_features_parallel,
)
from society_env.world.kernels.plumbing import copy_run, entry_point, generator_at, generator_handle, wrap
from society_env.world.kernels.records import (
    BirthRule,
    FoodRule,
    LifeRule,
    MoveRule,
    RewardRule,
    StepActions,
    StepRecord,
    StepRule,
    TransferRule,
    WorldArrays,
    step_record,
)
from society_env.world.kernels.step import (
    AFTER_ARTIFACTS,
    BEFORE_ARTIFACTS,
    WHOLE_STEP,
    advance,
    first_bad_action,
    step_and_observe,
)

__all__ = [
    "AFTER_ARTIFACTS", "BEFORE_ARTIFACTS", "FAMILY_SCAN_LIMIT", "WHOLE_STEP", "BirthRule", "FoodRule", "LifeRule",
    "MoveRule", "ObservationSpec", "OwnState", "RegrowthBuffers", "RewardRule", "StepActions", "StepRecord",
    "StepRule", "TransferRule", "WorldArrays", "advance", "choice_without_replacement", "copy_run", "draw_free_cells",
    "entry_point", "fill_grid", "fill_grid_parallel", "first_bad_action", "gather_views", "gather_views_parallel",
    "generator_at", "generator_handle", "group_families", "observe", "pairwise_sum", "permutation", "position_order",
    "regrowth_buffers", "step_and_observe", "step_record", "wrap", "write_features", "write_features_parallel",
]
