"""Compile validated rules into NumPy evaluations (batch) and plain comparisons (one row).

No `eval`, no attribute access, no code from tenants: a rule is a tree of the small node classes
below, built only from validated data. Both paths use the same node objects, so a rule cannot
say one thing for a batch and another for the fraud-check.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from scoring.detectors.base import Reason, fmt
from scoring.features import FEATURE_BY_NAME, label
from scoring.rules.schema import ORDER_OPS, validate_rule, validate_rules

_PY_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}
_NP_OPS: dict[str, Callable[[Any, Any], np.ndarray]] = {
    ">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
    "==": np.equal, "!=": np.not_equal,
}
_OP_WORDS = {">": ">", ">=": "≥", "<": "<", "<=": "≤", "==": "=", "!=": "≠", "in": "in", "not_in": "not in"}


def _column(frame: Mapping[str, Any], feature: str, text: bool) -> np.ndarray:
    return np.asarray(frame[feature], dtype=object if text else np.float64)


class _Cmp:
    __slots__ = ("feature", "op", "value", "text", "_set")

    def __init__(self, feature: str, op: str, value: Any) -> None:
        self.feature, self.op = feature, op
        self.text = FEATURE_BY_NAME[feature].dtype == "str"
        self.value = value if self.text or op in ("in", "not_in") else float(value)
        if op in ("in", "not_in"):
            self.value = [v if self.text else float(v) for v in value]
            self._set = frozenset(self.value)
        else:
            self._set = frozenset()

    def mask(self, frame: Mapping[str, Any]) -> np.ndarray:
        col = _column(frame, self.feature, self.text)
        if self.op == "in":
            return np.isin(col, self.value)
        if self.op == "not_in":
            return ~np.isin(col, self.value)
        return np.asarray(_NP_OPS[self.op](col, self.value), dtype=bool)

    def test(self, row: Mapping[str, Any]) -> bool:
        v = row[self.feature]
        v = ("" if v is None else str(v)) if self.text else float(v)
        if self.op == "in":
            return v in self._set
        if self.op == "not_in":
            return v not in self._set
        return bool(_PY_OPS[self.op](v, self.value))

    def leaves(self, row: Mapping[str, Any], negated: bool) -> list[tuple[_Cmp, Any]]:
        """Comparisons that make the rule true for this row (those under a `not` are skipped)."""
        return [] if negated or not self.test(row) else [(self, row[self.feature])]

    def describe(self, observed: Any) -> str:
        shown = self.value if not isinstance(self.value, float) else fmt(self.value)
        if isinstance(self.value, list):
            shown = "[" + ", ".join(str(v) for v in self.value[:5]) + (", …" if len(self.value) > 5 else "") + "]"
        obs = fmt(float(observed)) if not self.text else repr(observed)
        return f"{label(self.feature)} = {obs} ({_OP_WORDS[self.op]} {shown})"


class _All:
    __slots__ = ("children",)

    def __init__(self, children: list[Any]) -> None:
        self.children = children

    def mask(self, frame: Mapping[str, Any]) -> np.ndarray:
        out = self.children[0].mask(frame)
        for c in self.children[1:]:
            out = out & c.mask(frame)
        return out

    def test(self, row: Mapping[str, Any]) -> bool:
        return all(c.test(row) for c in self.children)

    def leaves(self, row: Mapping[str, Any], negated: bool) -> list[tuple[_Cmp, Any]]:
        return [leaf for c in self.children for leaf in c.leaves(row, negated)]


class _Any(_All):
    __slots__ = ()

    def mask(self, frame: Mapping[str, Any]) -> np.ndarray:
        out = self.children[0].mask(frame)
        for c in self.children[1:]:
            out = out | c.mask(frame)
        return out

    def test(self, row: Mapping[str, Any]) -> bool:
        return any(c.test(row) for c in self.children)


class _Not:
    __slots__ = ("child",)

    def __init__(self, child: Any) -> None:
        self.child = child

    def mask(self, frame: Mapping[str, Any]) -> np.ndarray:
        return ~self.child.mask(frame)

    def test(self, row: Mapping[str, Any]) -> bool:
        return not self.child.test(row)

    def leaves(self, row: Mapping[str, Any], negated: bool) -> list[tuple[_Cmp, Any]]:
        return self.child.leaves(row, not negated)


def _build(node: dict[str, Any]) -> Any:
    if "all" in node:
        return _All([_build(c) for c in node["all"]])
    if "any" in node:
        return _Any([_build(c) for c in node["any"]])
    if "not" in node:
        return _Not(_build(node["not"]))
    return _Cmp(node["feature"], node["op"], node["value"])


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: str
    description: str
    score: float
    severity: str
    action: str
    root: Any

    def mask(self, frame: Mapping[str, Any]) -> np.ndarray:
        return self.root.mask(frame)

    def test(self, row: Mapping[str, Any]) -> bool:
        return self.root.test(row)

    def reason(self, row: Mapping[str, Any]) -> Reason:
        """Words for a hit: the comparisons that held, with the value and the threshold of the
        first ordering comparison (the one an analyst would tune)."""
        leaves = self.root.leaves(row, False)
        primary = next((lf for lf in leaves if lf[0].op in ORDER_OPS), leaves[0] if leaves else None)
        detail = " and ".join(cmp.describe(v) for cmp, v in leaves)
        head = self.description or self.name.replace("_", " ")
        text = f"{head}: {detail}" if detail else head
        if primary is None or primary[0].text or isinstance(primary[0].value, list):
            # Text or list membership: no numeric threshold to show; 1.0 means "matched".
            return Reason(f"rule:{self.name}", text, 1.0, 1.0)
        return Reason(f"rule:{self.name}", text, float(primary[1]), float(primary[0].value))


def compile_rule(rule: dict[str, Any]) -> CompiledRule:
    r = validate_rule(rule)
    return CompiledRule(r["name"], r["description"], r["score"], r["severity"], r["action"], _build(r["condition"]))


class RuleResults:
    """Hits of a rule set over a frame: `hits[i, j]` is True when rule j fired on row i."""

    __slots__ = ("rules", "hits", "_frame")

    def __init__(self, rules: list[CompiledRule], hits: np.ndarray, frame: Mapping[str, Any]) -> None:
        self.rules, self.hits, self._frame = rules, hits, frame

    def scores(self) -> np.ndarray:
        """(rows, rules) matrix of the score of each hit rule, 0 elsewhere."""
        return self.hits * np.array([r.score for r in self.rules], dtype=np.float64)

    def reasons(self, i: int) -> list[Reason]:
        row: dict[str, Any] = {}
        out = []
        for j in np.flatnonzero(self.hits[i]):
            if not row:
                row = {k: _scalar(v[i]) for k, v in self._frame.items() if k in FEATURE_BY_NAME}
            out.append(self.rules[j].reason(row))
        return out


def _scalar(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


class RuleSet:
    """The enabled rules of a tenant, compiled once and reused for every batch."""

    def __init__(self, rules: list[dict[str, Any]]) -> None:
        valid = validate_rules(rules)
        self.rules = [CompiledRule(r["name"], r["description"], r["score"], r["severity"], r["action"],
                                   _build(r["condition"])) for r in valid if r["enabled"]]

    def __len__(self) -> int:
        return len(self.rules)

    def evaluate(self, frame: Mapping[str, Any]) -> RuleResults:
        """Vectorised: one NumPy expression per comparison over the whole frame."""
        n = len(next(iter(frame.values()))) if frame else 0
        hits = np.zeros((n, len(self.rules)), dtype=bool)
        for j, rule in enumerate(self.rules):
            hits[:, j] = rule.mask(frame)
        return RuleResults(self.rules, hits, frame)

    def evaluate_row(self, row: Mapping[str, Any]) -> RuleResults:
        """Single-row path (fraud-check): plain Python comparisons, no array allocation per node."""
        hits = np.array([[rule.test(row) for rule in self.rules]], dtype=bool).reshape(1, len(self.rules))
        return RuleResults(self.rules, hits, {k: [v] for k, v in row.items()})
