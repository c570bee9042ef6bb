"""Per-tenant rules as data: validation, safe compilation (NumPy batch + single row), defaults."""

from __future__ import annotations

from scoring.rules.defaults import default_rules
from scoring.rules.engine import CompiledRule, RuleResults, RuleSet, compile_rule
from scoring.rules.schema import RuleValidationError, validate_rule, validate_rules

__all__ = [
    "CompiledRule",
    "RuleResults",
    "RuleSet",
    "RuleValidationError",
    "compile_rule",
    "default_rules",
    "validate_rule",
    "validate_rules",
]
