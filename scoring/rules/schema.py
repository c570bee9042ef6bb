"""Validation of rules-as-data, with path-precise messages.

A rule (JSON/YAML-compatible):

    {"name": "velocity_count_1h", "description": "...", "score": 0.5, "severity": "medium",
     "action": "review", "enabled": true,
     "condition": {"all": [{"feature": "cust_count_1h", "op": ">", "value": 5},
                           {"not": {"feature": "country", "op": "in", "value": ["US", "CA"]}}]}}

Condition nodes: {"all": [...]}, {"any": [...]}, {"not": node}, or a comparison
{"feature", "op", "value"} over the feature names of `scoring.features`. Nothing is ever
evaluated as code: the validated tree is compiled to NumPy operations (`scoring.rules.engine`).
"""

from __future__ import annotations

import math
import re
from typing import Any

from scoring.features import FEATURE_BY_NAME

ORDER_OPS = (">", ">=", "<", "<=")
EQUALITY_OPS = ("==", "!=")
SET_OPS = ("in", "not_in")
ALL_OPS = ORDER_OPS + EQUALITY_OPS + SET_OPS
SEVERITIES = ("low", "medium", "high", "critical")
ACTIONS = ("allow", "review", "block")

MAX_DEPTH = 8
MAX_NODES = 64
MAX_LIST = 500
MAX_STRING = 200
MAX_RULES = 200
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,99}\Z")
_RULE_KEYS = {"name", "description", "condition", "score", "severity", "action", "enabled"}


class RuleValidationError(ValueError):
    """All problems found, each as (path, message); str() joins them for an API 400."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{p}: {m}" for p, m in errors))

    def as_dict(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for path, msg in self.errors:
            out.setdefault(path, []).append(msg)
        return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class _Checker:
    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []
        self.nodes = 0

    def err(self, path: str, msg: str) -> None:
        self.errors.append((path, msg))

    def node(self, node: Any, path: str, depth: int) -> None:
        self.nodes += 1
        if self.nodes == MAX_NODES + 1:
            self.err(path, f"condition too large: more than {MAX_NODES} nodes")
        if self.nodes > MAX_NODES:
            return
        if depth > MAX_DEPTH:
            self.err(path, f"condition nested too deeply (more than {MAX_DEPTH} levels)")
            return
        if not isinstance(node, dict):
            self.err(path, f"expected an object, got {type(node).__name__}")
            return
        groups = [k for k in ("all", "any", "not") if k in node]
        if groups:
            if len(node) != 1:
                self.err(path, f"a '{groups[0]}' node must have exactly one key, got {sorted(node)}")
                return
            key = groups[0]
            if key == "not":
                self.node(node["not"], f"{path}.not", depth + 1)
                return
            children = node[key]
            if not isinstance(children, list) or not children:
                self.err(f"{path}.{key}", "expected a non-empty list of conditions")
                return
            for i, child in enumerate(children):
                self.node(child, f"{path}.{key}[{i}]", depth + 1)
            return
        self.comparison(node, path)

    def comparison(self, node: dict[str, Any], path: str) -> None:
        extra = set(node) - {"feature", "op", "value"}
        missing = {"feature", "op", "value"} - set(node)
        if extra:
            self.err(path, f"unknown keys {sorted(extra)} (a comparison has feature, op, value; "
                           "groups are all, any, not)")
        if missing:
            self.err(path, f"missing {sorted(missing)}")
        if extra or missing:
            return
        feature, op, value = node["feature"], node["op"], node["value"]
        spec = FEATURE_BY_NAME.get(feature) if isinstance(feature, str) else None
        if spec is None:
            self.err(f"{path}.feature", f"unknown feature {feature!r}")
        if op not in ALL_OPS:
            self.err(f"{path}.op", f"unknown operator {op!r}; use one of {', '.join(ALL_OPS)}")
        if spec is None or op not in ALL_OPS:
            return
        vpath = f"{path}.value"
        text = spec.dtype == "str"
        if op in SET_OPS:
            if not isinstance(value, list) or not value:
                self.err(vpath, f"'{op}' needs a non-empty list")
                return
            if len(value) > MAX_LIST:
                self.err(vpath, f"list too long ({len(value)} items, at most {MAX_LIST})")
                return
            for i, item in enumerate(value):
                self.scalar(item, f"{vpath}[{i}]", feature, text)
            return
        if text and op in ORDER_OPS:
            self.err(f"{path}.op", f"'{op}' compares numbers; {feature!r} is text (use ==, !=, in, not_in)")
            return
        self.scalar(value, vpath, feature, text)

    def scalar(self, value: Any, path: str, feature: str, text: bool) -> None:
        if text:
            if not isinstance(value, str):
                self.err(path, f"expected a string for text feature {feature!r}, got {type(value).__name__}")
            elif len(value) > MAX_STRING:
                self.err(path, f"string longer than {MAX_STRING} characters")
        elif isinstance(value, bool):
            if FEATURE_BY_NAME[feature].dtype != "bool":
                self.err(path, f"expected a number for feature {feature!r}, got bool")
        elif not _is_number(value):
            kind = type(value).__name__ if not isinstance(value, float) else "non-finite number"
            self.err(path, f"expected a number for feature {feature!r}, got {kind}")


def validate_rule(rule: Any, path: str = "rule") -> dict[str, Any]:
    """Return a normalised copy of the rule, or raise RuleValidationError listing every problem."""
    c = _Checker()
    if not isinstance(rule, dict):
        raise RuleValidationError([(path, f"expected an object, got {type(rule).__name__}")])
    extra = set(rule) - _RULE_KEYS
    if extra:
        c.err(path, f"unknown keys {sorted(extra)}")
    name = rule.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        c.err(f"{path}.name", "required: 1-100 letters, digits, space, '_', '.', '-', starting with a letter or digit")
    desc = rule.get("description", "")
    if not isinstance(desc, str) or len(desc) > 500:
        c.err(f"{path}.description", "must be a string of at most 500 characters")
    score = rule.get("score")
    if not _is_number(score) or not 0.0 <= float(score) <= 1.0:  # type: ignore[arg-type]
        c.err(f"{path}.score", "required: a number between 0 and 1")
    if rule.get("severity") not in SEVERITIES:
        c.err(f"{path}.severity", f"required: one of {', '.join(SEVERITIES)}")
    if rule.get("action", "review") not in ACTIONS:
        c.err(f"{path}.action", f"one of {', '.join(ACTIONS)}")
    if not isinstance(rule.get("enabled", True), bool):
        c.err(f"{path}.enabled", "must be true or false")
    if "condition" not in rule:
        c.err(f"{path}.condition", "required")
    else:
        c.node(rule["condition"], f"{path}.condition", 1)
    if c.errors:
        raise RuleValidationError(c.errors)
    return {
        "name": name, "description": desc, "condition": rule["condition"], "score": float(score),  # type: ignore[arg-type]
        "severity": rule["severity"], "action": rule.get("action", "review"),
        "enabled": rule.get("enabled", True),
    }


def validate_rules(rules: Any) -> list[dict[str, Any]]:
    """Validate a whole rule set: every rule, unique names, size limit."""
    if not isinstance(rules, list):
        raise RuleValidationError([("rules", "expected a list of rules")])
    if len(rules) > MAX_RULES:
        raise RuleValidationError([("rules", f"too many rules ({len(rules)}, at most {MAX_RULES})")])
    errors: list[tuple[str, str]] = []
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        try:
            ok = validate_rule(rule, f"rules[{i}]")
        except RuleValidationError as exc:
            errors += exc.errors
            continue
        if ok["name"] in seen:
            errors.append((f"rules[{i}].name", f"duplicate rule name {ok['name']!r}"))
        seen.add(ok["name"])
        out.append(ok)
    if errors:
        raise RuleValidationError(errors)
    return out
