"""Recipes: YAML files of TrainConfig values (only what differs from the defaults).

    # recipes/mnist-100.yaml
    dataset: mnist
    labels_per_class: 10
    epochs: 40

Precedence, lowest first: ``TrainConfig`` defaults < the recipe < command-line flags (or the
``overrides`` of :func:`recipe_config`). Keys are TrainConfig field names; an unknown key, a
value of the wrong type or a missing file is a ``ValueError`` (``FileNotFoundError`` for the
file) with one clear line, raised before any work. PyYAML is imported only here.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any

from .config import SPEED_CHOICES, TrainConfig


class RecipeError(ValueError):
    """A recipe file that cannot be used (bad YAML, unknown key, wrong type)."""


def _allowed(tp: Any) -> tuple[type, ...]:
    """The plain types a field annotation admits: ``int | None`` -> (int, NoneType)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return tuple(t for a in typing.get_args(tp) for t in _allowed(a))
    if origin is not None:                       # dict[str, Any], list[int], ...
        return (origin,)
    return (type(None),) if tp is None else (tp,)


def _quoted_float(text: str) -> float | None:
    """``text`` as a float when it spells one, else None: a float field given a quoted number
    (``lr: '1e-3'``); unquoted ones are numbers already (``yaml_loader``)."""
    try:
        return float(text)
    except ValueError:
        return None


def _coerce(key: str, value: Any, tp: Any, where: str) -> Any:
    """``value`` checked against the field's type; ints are accepted for floats."""
    allowed = _allowed(tp)
    if key == "labels_per_class" and value == "all":      # as on the command line
        return None
    if key in SPEED_CHOICES and isinstance(value, bool):  # YAML 1.1 reads on/off as booleans
        return "on" if value else "off"
    if isinstance(value, str) and float in allowed and str not in allowed and \
            (number := _quoted_float(value)) is not None:
        return number
    if isinstance(value, bool):
        if bool in allowed:
            return value
    elif isinstance(value, int) and int in allowed:
        return value
    elif isinstance(value, (int, float)) and float in allowed:
        return float(value)
    elif value is None and type(None) in allowed:
        return None
    elif not isinstance(value, (bool, int, float)) and value is not None and \
            any(isinstance(value, t) for t in allowed if t not in (int, float, bool, type(None))):
        return dict(value) if isinstance(value, dict) else value
    names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
    if key == "labels_per_class":
        names = "a positive integer or 'all'"
    quote = ""
    if str in allowed and (value is None or isinstance(value, (bool, int, float))):
        # YAML reads ~ and an empty value as null, yes/no/on/off as booleans, 1e5 as a number
        quote = f" (YAML read it as {'null' if value is None else type(value).__name__}: quote " \
                f"text, e.g. {key}: '~/data')" if key == "data_root" else \
                f" (YAML read it as {'null' if value is None else type(value).__name__}: " \
                f"quote text)"
    raise RecipeError(f"recipe {where}: {key} must be {names}, got {value!r}{quote}")


# YAML 1.2's floats: PyYAML follows YAML 1.1, which needs a dot, so that ``1e-3`` and
# ``5E4`` would be read as strings. Dotted forms, .inf and .nan as in YAML 1.1.
_FLOAT = r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
             |[-+]?(?:[0-9][0-9_]*)[eE][-+]?[0-9]+
             |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
             |[-+]?\.(?:inf|Inf|INF)
             |\.(?:nan|NaN|NAN))$"""


def yaml_loader():
    """PyYAML's safe loader with two changes: a key given twice is an error (safe_load keeps
    the last one without a word), and ``1e-3`` is a float, as in YAML 1.2 and Python, at
    every depth (a recipe's ``net_options`` too) and in ``--net-option`` values."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if isinstance(key, (list, dict, set)):          # `? [a, b]`: not a name
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a name, not a {type(key).__name__}",
                    key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return loader.construct_mapping(node, deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(_FLOAT, re.X),
                                 list("-+0123456789."))
    return Loader


def _yaml_problem(e: Exception) -> str:
    """PyYAML's error as one line with the recipe's line and column, without its
    ``in "<unicode string>"`` and the caret drawing."""
    def at(what, mark):
        return f"{what} (line {mark.line + 1}, column {mark.column + 1})" if mark else what
    problem = getattr(e, "problem", None)
    if not problem:
        return " ".join(str(e).split())[:200]
    context = getattr(e, "context", None)
    return at(problem, e.problem_mark) + (
        f", {at(context, e.context_mark)}" if context else "")


def load_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """The ``{field: value}`` pairs of a recipe file, checked against ``TrainConfig``.

    An empty file is an empty recipe. Comments and the YAML header are free-form.
    """
    return read_recipe(path)[0]


SHIPPED = ("mnist-100.yaml", "svhn-1000.yaml", "cifar10-4000.yaml")
# other libraries' names for TrainConfig fields, too far from them for difflib to suggest
ALIASES = {"learning_rate": "lr", "num_epochs": "epochs", "n_epochs": "epochs",
           "max_epochs": "epochs", "labels": "labels_per_class",
           "num_labels": "labels_per_class", "n_labels": "labels_per_class"}


def read_recipe(path: str | os.PathLike) -> tuple[dict[str, Any], bytes]:
    """:func:`load_recipe`'s values and the file's bytes they were parsed from, read once
    (what a run copies into its folder, whatever happens to the file meanwhile)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise RecipeError(f"recipe {path} is a folder; pass a .yaml file (e.g. "
                          f"recipes/mnist-100.yaml)")
    if not path.is_file():
        raise FileNotFoundError(f"recipe {path} does not exist" + (
            f" (from {Path.cwd()}): ganaug's recipes ({', '.join(SHIPPED)}) are files of its "
            f"repository's recipes/ folder, not installed with the package; run from the "
            f"checkout's root or give the file's full path"
            if not path.is_absolute() and path.name in SHIPPED else ""))
    try:
        import yaml
    except ImportError:
        raise RecipeError("recipes need PyYAML: pip install 'pyyaml>=6'") from None
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RecipeError(f"recipe {path} is not a text file (not UTF-8); pass a .yaml "
                          f"file") from None
    try:
        data = yaml.load(text, Loader=yaml_loader())
    except yaml.YAMLError as e:
        raise RecipeError(f"recipe {path} is not valid YAML: {_yaml_problem(e)}") from None
    if data is None:
        return {}, raw
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {path} must be a mapping of TrainConfig fields to values, "
                          f"got a {type(data).__name__}")
    hints = typing.get_type_hints(TrainConfig)
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            close = [ALIASES[key]] if key in ALIASES else \
                difflib.get_close_matches(str(key).replace("-", "_"), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RecipeError(f"recipe {path}: unknown key {key!r}{hint}; keys are TrainConfig "
                              f"field names")
        out[key] = _coerce(key, value, hints[key], str(path))
    return out, raw


def recipe_config(path: str | os.PathLike | None = None, **overrides: Any) -> TrainConfig:
    """``TrainConfig`` defaults, then the recipe at ``path``, then ``overrides``."""
    values = load_recipe(path) if path is not None else {}
    return TrainConfig(**{**values, **overrides})


__all__ = ["load_recipe", "read_recipe", "recipe_config", "RecipeError"]
