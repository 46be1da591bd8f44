"""The YAML of experiment configs and ``--set`` values, read strictly.

PyYAML follows YAML 1.1, where ``on``/``off``/``yes``/``no`` are booleans, ``010`` is octal 8,
``1_000`` is 1000, ``1:30`` is 90 and ``2024-01-01`` a date, while ``1e-3`` is text: a config
read that way takes ``--set train.epochs=on`` as 1. Here plain scalars follow YAML 1.2's core
schema, stricter still for numbers: ``true``/``false`` are the booleans; a whole number is
plain decimal without leading zeros; a float has a point or an exponent (``1e-3``), or is
``.inf``/``.nan``; ``null``/``~``/nothing is null; anything else is text, which a boolean,
integer or float field then refuses (the schema is strict: ``drgrader.config.Section``). A key
written twice in one mapping, or a field set twice by ``--set``, is an error: the last one
never wins silently. Sizes are bounded: nesting depth before parsing, values after.
"""

from __future__ import annotations

import re
import reprlib
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and field."""


MAX_ECHO = 80  # characters of a bad input quoted back in an error message
MAX_VALUES = 100_000  # values in a config (a few hundred in a real one): more is a YAML alias bomb
MAX_DEPTH = 50  # brackets nested in a config (a real one: 3)
_ECHO = reprlib.Repr()
_ECHO.maxlevel, _ECHO.maxlist, _ECHO.maxdict, _ECHO.maxtuple, _ECHO.maxset = 2, 4, 4, 4, 4
_ECHO.maxstring = _ECHO.maxother = _ECHO.maxlong = MAX_ECHO


def echo(value: Any) -> str:
    """A bad input quoted back: at most ``MAX_ECHO`` characters, however large or deep the value
    (a full repr of an aliased YAML structure can be billions of characters)."""
    return _ECHO.repr(value)[:MAX_ECHO]


# ------------------------------------------------------------------ the strict scalars
_YAML11_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("bool", "int", "float", "timestamp")}
_DIGITS = "0123456789"
_CORE_SCALARS = [  # (tag, pattern, possible first characters)
    ("tag:yaml.org,2002:bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("tag:yaml.org,2002:int", r"[-+]?(?:0|[1-9][0-9]*)", "-+" + _DIGITS),
    ("tag:yaml.org,2002:float",
     r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+"
     r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)", "-+." + _DIGITS),
]


def _core_resolvers(base: dict, *, keep_yaml11: bool) -> dict:
    resolvers = {first: [(tag, rx) for tag, rx in pairs if keep_yaml11 or tag not in _YAML11_TAGS]
                 for first, pairs in base.items()}
    for tag, pattern, firsts in _CORE_SCALARS:
        for first in firsts:
            resolvers.setdefault(first, []).append((tag, re.compile(f"^(?:{pattern})$")))
    return resolvers


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with the core scalars above, refusing a key written twice in a mapping."""

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        seen: set[str] = set()
        for key, _ in node.value:  # before merge keys (<<) are expanded: only keys as written
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if key.value in seen:
                    raise yaml.composer.ComposerError(None, None, f"key {key.value[:MAX_ECHO]!r} is written twice",
                                                      key.start_mark)
                seen.add(key.value)
        return node


class _QuotingDumper(yaml.SafeDumper):
    """SafeDumper that quotes text either YAML 1.1 or the strict loader would read as another
    type (``'on'``, ``'1e3'``), so a saved config reads back the same under both."""


_StrictLoader.yaml_implicit_resolvers = _core_resolvers(yaml.SafeLoader.yaml_implicit_resolvers, keep_yaml11=False)
_QuotingDumper.yaml_implicit_resolvers = _core_resolvers(yaml.SafeDumper.yaml_implicit_resolvers, keep_yaml11=True)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_QuotingDumper, sort_keys=False)


# ---------------------------------------------------------------------------- reading
def _flow_depth(text: str) -> int:
    """How deep ``[`` and ``{`` nest in ``text`` (quotes not honoured: an upper bound)."""
    depth = deepest = 0
    for bracket in re.findall(r"[][{}]", text):
        depth = depth + 1 if bracket in "[{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    return deepest


def load_yaml(text: str, source: str) -> Any:
    """The strict loader's reading of ``text``; every failure is one ConfigError line naming
    ``source``. Deep nesting is refused before parsing: PyYAML takes seconds to minutes to scan
    thousands of nested brackets, only to fail on Python's recursion limit."""
    if _flow_depth(text) > MAX_DEPTH:
        raise ConfigError(f"{source} is nested too deeply to be a config (more than {MAX_DEPTH} brackets deep)")
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"{source} is not valid YAML: {problem}{where}") from None
    except RecursionError:
        raise ConfigError(f"{source} is nested too deeply to be a config") from None
    except ValueError as exc:  # an integer of more than 4300 digits (Python's conversion limit)
        raise ConfigError(f"{source}: {str(exc)[:MAX_ECHO]}") from None


def plain_number(text: str, kind: type) -> int | float | None:
    """``text`` as a config file reads a number (the strict scalars: ASCII digits, no leading
    zeros), as ``kind``; None when it is not one. Python's int() and float() also take '２',
    '1_6' and ' 5', which command-line numbers, ``--shard`` and config values refuse alike."""
    if not text or not set(text) <= set(_DIGITS + "+-.eE"):  # no '_', no spaces, no '#' (a YAML comment)
        return None
    try:
        value = load_yaml(text, "a number")
    except ConfigError:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or (kind is int and not isinstance(value, int)):
        return None
    return kind(value)


def check_size(raw: Any, source: str) -> None:
    """Refuse a config that stands for more than ``MAX_VALUES`` values: YAML aliases can make a
    few hundred bytes expand to billions, and validating (or printing) them would never end."""
    seen, stack = 0, [raw]
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise ConfigError(f"{source} holds more than {MAX_VALUES:,} values (YAML aliases expanding?); "
                              "an experiment config has a few hundred")
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


# -------------------------------------------------------------------------- overrides
_COMMENT = re.compile(r"(^|\s)#")


def _parse_value(text: str, item: str) -> Any:
    # 3 -> int, 1e-3 -> float, true -> bool, [a, b] -> list, null -> None, on -> "on" (text).
    if not text.strip():
        return ""  # not null: the field says whether it may be empty (a path may not, a name may)
    value = load_yaml(text, f"override {item[:MAX_ECHO]!r}")
    if _COMMENT.search(text) and "#" not in repr(value):
        # YAML drops ' #...' as a comment: `data.root=/scans/clinic #2` would read /scans/clinic.
        raise ConfigError(f"override {item[:MAX_ECHO]!r}: ' #' starts a YAML comment, which would drop the rest of "
                          "the value; quote the value (e.g. key='a #2') or leave the comment out")
    return value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` overrides to a nested dict (values read as strict YAML). A field
    set twice, or set and then replaced by its section (``data.split.val=...`` and
    ``data.split={...}``), is an error: which one was meant cannot be known."""
    given: dict[tuple[str, ...], str] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item[:MAX_ECHO]!r} must look like section.field=value")
        path, value = item.split("=", 1)
        keys = tuple(key.strip() for key in path.strip().split("."))
        for earlier, earlier_item in given.items():
            shorter = min(len(earlier), len(keys))
            if earlier[:shorter] == keys[:shorter]:
                raise ConfigError(f"override {item[:MAX_ECHO]!r} sets {'.'.join(keys[:shorter])} again "
                                  f"(after {earlier_item[:MAX_ECHO]!r}); set each field once")
        given[keys] = item
        node = raw
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item[:MAX_ECHO]!r}: {key!r} is not a section")
            node = child
        node[keys[-1]] = _parse_value(value, item)
    return raw
