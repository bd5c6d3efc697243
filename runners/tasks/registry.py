"""The task registry: a sweep names its task, `get_task` builds it.

Two kinds of entry, each added by one decorator next to the code it registers:

- a named task (`@register_task("synth_translate", companion="synth_summarise")`): a factory
  called with the options of the sweep's task table (`task = {name = "synth_translate",
  max_len = 64}`); `companion` is the default zero-shot task of a sweep on it;
- a corpus format (`@register_corpus_format("tsv")`): a factory called with the file named by
  that key (`task = {name = "de_en", tsv = "pairs.tsv"}`) and the table's other options. The plan
  (runners/sweep/plan.py) resolves such paths against the sweep file's directory.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .base import Task

__all__ = ["CORPUS_FORMATS", "TASKS", "companion", "get_task", "register_corpus_format", "register_task"]

TaskFactory = Callable[..., Task]
TASKS: dict[str, TaskFactory] = {}
CORPUS_FORMATS: dict[str, TaskFactory] = {}
_COMPANIONS: dict[str, str] = {}


def _registrar(table: dict[str, TaskFactory], key: str,
               companion: str | None = None) -> Callable[[TaskFactory], TaskFactory]:
    """The decorator that enters a factory in `table` under `key` (and its companion task)."""
    def deco(factory: TaskFactory) -> TaskFactory:
        if key in TASKS or key in CORPUS_FORMATS:  # one namespace: a task name is never a corpus key
            raise ValueError(f"{key!r} is registered twice (task names and corpus formats share one namespace)")
        table[key] = factory
        if companion is not None:
            _COMPANIONS[key] = companion
        return factory
    return deco


def register_task(name: str, *, companion: str | None = None) -> Callable[[TaskFactory], TaskFactory]:
    """Decorator: register a factory `f(**options) -> Task` under the task name `name`.

    Parameters
    ----------
    name
        The name a sweep file gives (`task = "NAME"` or `task = {name = "NAME", ...}`).
    companion
        The task a sweep on this one evaluates zero-shot by default (`sweep.zero_shot_task`).

    Returns
    -------
    callable
        The decorator; it returns the factory unchanged.
    """
    return _registrar(TASKS, name, companion)


def register_corpus_format(key: str) -> Callable[[TaskFactory], TaskFactory]:
    """Decorator: register a factory `f(path, *, name, **options) -> Task` for task tables with `key`.

    Parameters
    ----------
    key
        The key of a task table that names a file in this format (e.g. "tsv").

    Returns
    -------
    callable
        The decorator; it returns the factory unchanged.
    """
    return _registrar(CORPUS_FORMATS, key)


def companion(name: str | None) -> str | None:
    """The default zero-shot task of a sweep on task `name` (None if it has none)."""
    return _COMPANIONS.get(name) if name is not None else None


def get_task(spec: Mapping[str, Any] | str) -> Task:
    """Build a task from a name or a TOML table.

    Parameters
    ----------
    spec
        A registered task name (e.g. "synth_translate"), or a table with `name` and options, or a
        table with a corpus-format key naming a file (e.g. `{name = "de_en", tsv = "pairs.tsv"}`).

    Returns
    -------
    Task
        The task.

    Raises
    ------
    ValueError
        For an unknown name, or options the task does not accept (TypeError passes through).
    """
    if isinstance(spec, str):
        spec = {"name": spec}
    spec = dict(spec)
    name = spec.pop("name", None)
    if name in TASKS:
        return TASKS[name](**spec)
    for key, factory in CORPUS_FORMATS.items():
        if key in spec:
            return factory(spec.pop(key), name=name or key, **spec)
    names = ", ".join(TASKS)
    formats = " or ".join(f"{k}=" for k in CORPUS_FORMATS)
    raise ValueError(f"unknown task {name!r}: use {names}, or a table with {formats}")
