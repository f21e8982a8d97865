"""The low-level parts the other kernel files build on, none of them a rule: copies as LLVM intrinsics (a
view row in 64-byte blocks), the division-free modulo of the torus, a buffer kept across steps or a new one,
an ``np.random.Generator`` passed to compiled code as its bit generator's addresses, a dispatcher's compiled
function called without typing its arguments, and a compiled twin of a function under another name.
"""

from __future__ import annotations

import ctypes
import types as pytypes

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from society_env.world.kernels.cache import kernel


@intrinsic
def copy_items(typingctx, target, target_start, source, source_start, count):
    """``target[target_start:target_start + count] = source[source_start:source_start + count]`` for 1-d
    contiguous arrays of one dtype, as one ``memcpy`` (LLVM's ``llvm.memcpy``; the ranges must not overlap).
    For a run of any length; :func:`copy_run` copies runs of 64 bytes and more inline."""
    if target.dtype != source.dtype or target.layout != "C" or source.layout != "C":
        return None  # no such function: numba's typing error names the arguments
    signature = types.void(target, types.intp, source, types.intp, types.intp)

    def codegen(context, builder, sig, args):
        target_array = context.make_array(sig.args[0])(context, builder, args[0])
        source_array = context.make_array(sig.args[2])(context, builder, args[2])
        itemsize = context.get_abi_sizeof(context.get_data_type(sig.args[0].dtype))
        cgutils.raw_memcpy(builder, builder.gep(target_array.data, [args[1]]),
                           builder.gep(source_array.data, [args[3]]), args[4], itemsize)
        return context.get_dummy_value()

    return signature, codegen


VECTOR_BYTES = 64
"""Bytes :func:`copy_block` moves: one AVX-512 register, one cache line."""


@intrinsic
def copy_block(typingctx, target, target_start, source, source_start):
    """Copy the 64 bytes (:data:`VECTOR_BYTES`) of 1-d contiguous ``source`` from item ``source_start`` on
    into ``target`` from item ``target_start`` on: one vector load and one vector store, unaligned."""
    if target.dtype != source.dtype or target.layout != "C" or source.layout != "C":
        return None  # no such function: numba's typing error names the arguments
    signature = types.void(target, types.intp, source, types.intp)

    def codegen(context, builder, sig, args):
        block = ir.VectorType(ir.IntType(8), VECTOR_BYTES).as_pointer()
        target_array = context.make_array(sig.args[0])(context, builder, args[0])
        source_array = context.make_array(sig.args[2])(context, builder, args[2])
        value = builder.load(builder.bitcast(builder.gep(source_array.data, [args[3]]), block), align=1)
        builder.store(value, builder.bitcast(builder.gep(target_array.data, [args[1]]), block), align=1)
        return context.get_dummy_value()

    return signature, codegen


@kernel(inline="always")
def copy_run(target, target_start, source, source_start, count):  # pragma: no cover - compiled
    """:func:`copy_items` inline, for a run of at least 64 bytes: 64-byte blocks (:func:`copy_block`), the
    last one overlapping the one before instead of a tail item by item. A window row of the gather (312
    bytes in float32) is five blocks, where a call of libc's ``memcpy`` first decides how to copy it: the
    gather 18% faster at 500 agents (0.063 against 0.077 ms, measured 2026-12-06); a compiled loop of
    items copies in vector blocks, then the tail item by item, slower than ``memcpy``."""
    per_block = VECTOR_BYTES // target.itemsize
    if count < per_block:
        copy_items(target, target_start, source, source_start, count)
        return
    x = 0
    while x + per_block < count:
        copy_block(target, target_start + x, source, source_start + x)
        x += per_block
    copy_block(target, target_start + count - per_block, source, source_start + count - per_block)


@kernel(inline="always")
def wrap(x, n):  # pragma: no cover - compiled
    """``x % n`` (n > 0), without the integer division when ``x`` is within one ``n`` of ``[0, n)`` (a step
    or a view offset on the torus: the usual case); a division costs more than the rest of a move."""
    if x < 0:
        x += n
    elif x >= n:
        x -= n
    return x if 0 <= x < n else x % n


@kernel(inline="always")
def room_in(buffer, count):  # pragma: no cover - compiled
    """The first ``count`` entries of ``buffer`` if it has them (a buffer kept across calls,
    ``food_cells.RegrowthBuffers``), else a new array of its dtype."""
    return buffer[:count] if buffer.shape[0] >= count else np.empty(count, buffer.dtype)


GENERATOR_HANDLE_FIELDS = ("state_address", "state", "fnptr_next_uint64", "fnptr_next_uint32", "fnptr_next_double",
                           "bit_generator")
"""What numba's Generator value holds of its bit generator (its ``ctypes`` interface), in the order of
:func:`generator_handle`."""


def generator_handle(rng: np.random.Generator) -> np.ndarray:
    """``rng``'s bit generator as the addresses numba's Generator value holds (uint64, in the order of
    :data:`GENERATOR_HANDLE_FIELDS`), for :func:`generator_at`. Valid while ``rng`` lives."""
    interface = rng.bit_generator.ctypes
    functions = [ctypes.cast(f, ctypes.c_void_p).value
                 for f in (interface.next_uint64, interface.next_uint32, interface.next_double)]
    return np.array([interface.state_address, interface.state.value, *functions, interface.bit_generator.value],
                    dtype=np.uint64)


@intrinsic
def generator_at(typingctx, handle):
    """The Generator of :func:`generator_handle`'s ``handle``, inside compiled code: its draws advance the
    Python Generator's state, as when the Generator itself is passed. Passing it costs 5-10 us a call
    (numba's unboxing looks up five attributes and makes three ``ctypes`` casts in Python), a tenth of a
    step of 500 agents; the handle is an array, read in nanoseconds."""
    if not (isinstance(handle, types.Array) and handle.dtype == types.uint64 and handle.ndim == 1):
        return None
    generator_type = types.NumPyRandomGeneratorType("generator")

    def codegen(context, builder, sig, args):
        array = context.make_array(sig.args[0])(context, builder, args[0])
        bit_generator = cgutils.create_struct_proxy(types.NumPyRandomBitGeneratorType("bit_generator"))(context,
                                                                                                      builder)
        for i, field in enumerate(GENERATOR_HANDLE_FIELDS):
            setattr(bit_generator, field, builder.load(builder.gep(array.data, [context.get_constant(types.intp, i)])))
        generator = cgutils.create_struct_proxy(generator_type)(context, builder)
        generator.bit_generator = bit_generator._getvalue()  # no Python parent, no meminfo: never boxed
        return generator._getvalue()

    return generator_type(handle), codegen


def entry_point(dispatcher, *args):
    """``dispatcher``'s compiled function for the types of ``args`` (compiled now, or loaded from the disk
    cache), to call directly: a call through the dispatcher first types every argument, and typing the
    records of ``step.step_and_observe`` costs 5 us, 2% of a step of 500 agents. Every call must pass
    arguments of these types: nothing checks them."""
    return dispatcher.compile(tuple(dispatcher.typeof_pyval(arg) for arg in args))


def renamed(function, name: str):
    """``function`` (the same code and globals) under another name. numba keys its disk cache by a
    function's qualified name and first line: two compiled twins of one Python function share one entry
    and load each other's code (the "parallel" one ran serial code); renamed, each has its own."""
    twin = pytypes.FunctionType(function.__code__, function.__globals__, name, function.__defaults__,
                                function.__closure__)
    twin.__qualname__ = name
    return twin
