"""Validation: rows that break a rule leave the pipeline for the dead-letter queue, naming the rule.

Rules flag rows (``_error``) instead of filtering them, so that a job computes its accepted and
its rejected rows in one pass over the micro-batch; the runner splits them after collecting.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

ERROR = "_error"


@dataclass(frozen=True)
class Rule:
    name: str
    condition: str              # Spark SQL, true for a valid row; null counts as a failure

    @staticmethod
    def required(*columns: str) -> list["Rule"]:
        return [Rule(f"{c} is required", f"`{c}` IS NOT NULL") for c in columns]

    @staticmethod
    def between(column: str, low=None, high=None) -> "Rule":
        parts = ([f"`{column}` >= {low!r}"] if low is not None else []) + \
                ([f"`{column}` <= {high!r}"] if high is not None else [])
        bounds = f"{'' if low is None else low}..{'' if high is None else high}"
        return Rule(f"{column} in {bounds}", f"`{column}` IS NULL OR ({' AND '.join(parts) or 'true'})")

    @staticmethod
    def one_of(column: str, values: list[str]) -> "Rule":
        listed = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
        return Rule(f"{column} in {sorted(values)}", f"`{column}` IS NULL OR `{column}` IN ({listed})")

    @staticmethod
    def matches(column: str, pattern: str) -> "Rule":
        escaped = pattern.replace("\\", "\\\\").replace("'", "\\'")
        return Rule(f"{column} matches {pattern}", f"`{column}` IS NULL OR `{column}` RLIKE '{escaped}'")


def check(df: DataFrame, rules: list[Rule]) -> DataFrame:
    """Adds ``_error``: the name of the first rule the row breaks, or null."""
    error = F.lit(None).cast("string")
    for rule in reversed(rules):
        passed = F.coalesce(F.expr(rule.condition), F.lit(False))
        error = F.when(~passed, F.lit(f"rule failed: {rule.name}")).otherwise(error)
    return df.withColumn(ERROR, error)

