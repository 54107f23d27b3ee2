"""YAML for briefs, loaded safely: no tags, and no "alias bomb" is ever expanded.

A document whose aliases would expand past :data:`MAX_EXPANDED_NODES` nodes is
refused from its composed node graph, before anything is expanded; nesting is
measured without recursion, since a hostile brief may nest thousands deep.
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import InputError

__all__ = ["MAX_EXPANDED_NODES", "load_yaml_safely", "nesting_depth"]

MAX_EXPANDED_NODES = 20000


def _expanded_size(node: yaml.Node, memo: dict[int, int], depth: int = 0) -> int:
    if depth > 100:
        raise ValueError("nesting deeper than 100 levels")
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = MAX_EXPANDED_NODES + 1  # a cycle counts as too big
    size = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            size += _expanded_size(child, memo, depth + 1)
            if size > MAX_EXPANDED_NODES:
                break
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            size += _expanded_size(k, memo, depth + 1) + _expanded_size(v, memo, depth + 1)
            if size > MAX_EXPANDED_NODES:
                break
    memo[key] = size
    return size


def nesting_depth(value: Any) -> int:
    """Nesting depth of parsed data, without recursion (a hostile brief may nest thousands deep)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item)
    return deepest


def load_yaml_safely(text: str, label: str) -> Any:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        raise InputError(f"is not valid YAML ({e}). Fix the brief and drop it again.", file=label) from e
    except RecursionError as e:
        raise InputError("is nested too deeply to be a brief. Fix the brief and drop it again.", file=label) from e
    if node is None:
        return None
    try:
        size = _expanded_size(node, {})
    except ValueError as e:
        raise InputError(f"is refused: {e}.", file=label) from e
    if size > MAX_EXPANDED_NODES:
        raise InputError(
            f"is refused: its YAML aliases expand to more than {MAX_EXPANDED_NODES} values "
            "(an 'alias bomb'). Write the brief without anchors/aliases.",
            file=label,
        )
    # Expanding is safe now that the expanded size is known to be small.
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        # e.g. a tag such as !!python/object/apply: safe_load refuses it; say so instead of failing.
        raise InputError(
            f"uses YAML omad does not accept ({str(e).splitlines()[0]}). Briefs are plain YAML: mappings, "
            "lists, text and numbers, without '!!' tags. Fix the brief and drop it again.",
            file=label,
        ) from e
