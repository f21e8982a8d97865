"""Options declared once: a dataclass field carries its command-line flag, help, group and checks.

CleanRL's ``Args`` idea without a new dependency. A field made with :func:`option` becomes an argparse
option (:func:`add_options`), its value comes back from the parsed arguments (:func:`given_options`),
its lower bound is checked with a one-line error naming the flag (:func:`check_bounds`), and whether
``--resume`` may change it is declared next to it (:func:`fixed_on_resume`, :func:`resumable_flags`, which
the ``--resume`` help texts are written from). Help texts state the default the dataclass holds, so they
cannot drift from it.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable

__all__ = ["option", "same_option", "add_options", "given_options", "check_bounds", "fixed_on_resume",
           "resumable_flags", "flag_of"]


def option(default: Any = None, help: str = "", *, group: str, flag: str | None = None, type: Callable | None = None,
           choices: tuple | None = None, metavar: str | None = None, minimum: float | None = None,
           default_text: str | None = None, resumable: bool = False, append: bool = False,
           parse: Callable[[Any], Any] | None = None, note: str = "", default_factory: Callable | None = None,
           switch: str | None = None, aliases: tuple[str, ...] = ()) -> Any:
    """A dataclass field that is also a command-line option (see the module docstring).

    ``default_text`` replaces the printed default (e.g. when None means "chosen from the model");
    ``append`` makes a repeatable option whose list ``parse`` turns into the field's value; ``note`` is
    added to the bound error (why the bound exists); ``switch`` makes a boolean flag: ``"on"`` (the flag
    alone sets True) or ``"both"`` (``--x`` / ``--no-x``); ``aliases`` are older spellings of the flag that
    still work. ``resumable``: ``--resume`` may give it (it does not change what
    the run computes)."""
    metadata = {"help": help, "group": group, "flag": flag, "type": type, "choices": choices, "metavar": metavar,
                "minimum": minimum, "default_text": default_text, "resumable": resumable, "append": append,
                "parse": parse, "note": note, "switch": switch, "aliases": aliases}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def same_option(cls, name: str, default: Any = dataclasses.MISSING, **changes: Any) -> Any:
    """The option field ``name`` of dataclass ``cls`` declared again for another dataclass, with the same
    default, flag, help and checks except the ``changes`` (e.g. another ``group``, ``help`` or
    ``default``): one declaration shared by several commands."""
    source = next(f for f in dataclasses.fields(cls) if f.name == name)
    metadata = {**source.metadata, **changes}
    if default is not dataclasses.MISSING:
        return dataclasses.field(default=default, metadata=metadata)
    if source.default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=source.default_factory, metadata=metadata)
    return dataclasses.field(default=source.default, metadata=metadata)


def _options(cls) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if "group" in f.metadata]


def flag_of(field: dataclasses.Field) -> str:
    return field.metadata["flag"] or "--" + field.name.replace("_", "-")


def add_options(groups: dict[str, Any], cls, only: tuple[str, ...] | None = None,
                changes: dict[str, dict[str, Any]] | None = None) -> None:
    """Add every option field of dataclass ``cls`` (or those named in ``only``) to its argparse group in
    ``groups`` (group title -> parser or argument group), with the metadata ``changes`` of a field (e.g.
    another ``help`` for one command). Every option defaults to None, meaning "the dataclass default" (so
    explicit options can be told from defaults, e.g. on resume)."""
    for field in _options(cls):
        if only is not None and field.name not in only:
            continue
        meta = {**field.metadata, **(changes or {}).get(field.name, {})}
        default = field.default if field.default is not dataclasses.MISSING else None
        shown = f"default: {meta['default_text']}" if meta["default_text"] is not None else f"default {default}"
        if meta.get("switch") == "on" and not default and meta["default_text"] is None:
            shown = ""  # a flag that is off unless given
        text = f"{meta['help']} ({shown})" if shown else meta["help"]
        kwargs: dict[str, Any] = {"dest": field.name, "help": text, "default": None}
        if meta.get("switch") == "on":
            kwargs["action"] = "store_const"
            kwargs["const"] = True
        elif meta.get("switch") == "both":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif meta["append"]:
            kwargs["action"] = "append"
        elif meta["choices"] is not None:
            kwargs["choices"] = meta["choices"]
        else:
            kwargs["type"] = meta["type"] or (type(default) if default is not None else str)
        if meta["metavar"]:
            kwargs["metavar"] = meta["metavar"]
        elif "type" in kwargs:  # the flag's own name, not the field's (they differ when the flag was renamed)
            kwargs["metavar"] = flag_of(field).lstrip("-").replace("-", "_").upper()
        groups[meta["group"]].add_argument(flag_of(field), *meta.get("aliases", ()), **kwargs)


def given_options(args: argparse.Namespace, cls) -> dict[str, Any]:
    """The option fields of ``cls`` given on the command line (parsed), by field name."""
    values = {}
    for field in _options(cls):
        value = getattr(args, field.name, None)
        if value is not None:
            values[field.name] = field.metadata["parse"](value) if field.metadata["parse"] else value
    return values


def check_bounds(instance) -> None:
    """``ValueError`` naming the flag for the first option field below its ``minimum`` (None is unset)."""
    for field in _options(type(instance)):
        value, minimum = getattr(instance, field.name), field.metadata["minimum"]
        if minimum is not None and value is not None and value < minimum:
            note = f"; {field.metadata['note']}" if field.metadata["note"] else ""
            raise ValueError(f"{flag_of(field)} must be at least {minimum:g} (got {value}){note}")


def fixed_on_resume(args: argparse.Namespace, *classes) -> list[str]:
    """Flags given on the command line that ``--resume`` may not change (the run's saved settings)."""
    return [flag_of(field) for cls in classes for field in _options(cls)
            if not field.metadata["resumable"] and getattr(args, field.name, None) is not None]


def resumable_flags(*classes) -> list[str]:
    """The flags ``--resume`` may be given with (``--resume`` itself left out), in declaration order."""
    return [flag_of(field) for cls in classes for field in _options(cls)
            if field.metadata["resumable"] and field.name != "resume"]
