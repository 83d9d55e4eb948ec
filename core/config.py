"""The one config loader: YAML mappings into typed dataclasses, with errors that name the file
and the key. Used for training profiles (and the bot's settings), so that a typo such as
`lora.rnak` is an error naming the key, never a silently ignored setting."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from core.errors import UserError

T = TypeVar("T")


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML with duplicate keys refused: `max_queue: 8` twice in one section is a mistake
    (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:  # `? [a, b]` is valid YAML, but no setting is named by a list
                raise yaml.constructor.ConstructorError(
                    None, None, f"a {type(key).__name__} as a key (keys are names)", key_node.start_mark) from None
            if key in seen and key != "<<":
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {seen[key]})", key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def read_yaml(path: Path) -> dict:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, not a YAML file") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"{where}: invalid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of keys to values, got {type(raw).__name__}")
    return raw


def build(cls: type[T], values: dict, where: str, prefix: str = "") -> T:
    """A `cls` instance from a mapping; unknown keys and wrong types raise UserError."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields), key=str)  # keys may be numbers or booleans (`1:`, `yes:`)
    if unknown:
        raise UserError(f"{where}: unknown key '{prefix}{unknown[0]}' (known keys: {', '.join(prefix + k for k in fields)})")
    kwargs = {}
    for name, value in values.items():
        kwargs[name] = convert(value, hints[name], where, f"{prefix}{name}")
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise UserError(f"{where}: missing key '{prefix}{missing[0]}'")
    check_ranges(cls, kwargs, where, prefix)
    try:
        return cls(**kwargs)
    except ValueError as exc:  # a dataclass's own range check says "key: reason"
        raise UserError(f"{where}: {prefix}{exc}") from None


def check_ranges(cls: type, values: dict, where: str, prefix: str) -> None:
    """A dataclass may declare `RANGES = {"field": (lowest, highest)}` (None: unbounded): a
    value outside is an error naming the key, never a bot that cannot answer (max_queue: 0)."""
    for name, (low, high) in getattr(cls, "RANGES", {}).items():
        value = values.get(name)
        if value is None or isinstance(value, bool):
            continue
        if low is not None and value < low:
            raise UserError(f"{where}: {prefix}{name}: must be at least {low}, got {value!r}")
        if high is not None and value > high:
            raise UserError(f"{where}: {prefix}{name}: must be at most {high}, got {value!r}")


def convert(value: Any, hint: Any, where: str, key: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise UserError(f"{where}: {key}: expected a mapping, got {value!r}")
        return build(hint, value, where, prefix=f"{key}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return convert(value, option, where, key)
            except UserError as exc:
                errors.append(exc)
        raise errors[-1]
    if origin is Literal:
        if value not in args:
            raise UserError(f"{where}: {key}: {value!r} is not one of {', '.join(repr(a) for a in args)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise UserError(f"{where}: {key}: expected a list, got {value!r}")
        return [convert(v, args[0], where, f"{key}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return finite(float(value), where, key)
    if hint is float and isinstance(value, str):
        try:
            number = float(value)  # YAML reads 2e-4 (no dot) as a string
        except ValueError:
            pass
        else:
            return finite(number, where, key)
    if hint in (int, str, bool) and type(value) is hint:
        return value
    if hint is Any:
        return value
    raise UserError(f"{where}: {key}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


def finite(value: float, where: str, key: str) -> float:
    """NaN and infinity are refused: every comparison with NaN is False, so a NaN threshold or
    range would silently switch its check off (`.nan`, `nan` and `inf` are all valid YAML)."""
    if not math.isfinite(value):
        raise UserError(f"{where}: {key}: expected a finite number, got {value!r}")
    return value


def set_dotted(values: dict, dotted: str, raw: str, where: str) -> None:
    """Apply one `key.sub=value` override (value parsed as YAML) to a nested mapping."""
    *parents, leaf = dotted.split(".")
    node = values
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"{where}: {dotted}: {part} is not a section")
    try:
        node[leaf] = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as exc:
        raise UserError(f"{where}: invalid YAML value ({getattr(exc, 'problem', None) or exc})") from None


def values_with_overrides(path: Path, overrides: list[str], example: str, required: bool = True) -> dict:
    """A config file's values with `--set KEY=VALUE` overrides applied (values parsed as YAML).
    A missing file is an error when `required`, else no values (every setting at its default)."""
    return with_overrides(read_yaml(path) if required or path.exists() else {}, overrides, example)


def merged(base: dict, changes: dict) -> dict:
    """`base` with `changes` applied; a section present in both is merged key by key."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def with_overrides(values: dict, overrides: list[str], example: str) -> dict:
    """`values` with `--set KEY=VALUE` overrides applied (values parsed as YAML)."""
    for override in overrides:
        if "=" not in override:
            raise UserError(f"--set {override}: expected KEY=VALUE, e.g. --set {example}")
        key, raw = override.split("=", 1)
        set_dotted(values, key.strip(), raw.strip(), f"--set {override}")
    return values
