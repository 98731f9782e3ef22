"""Arithmetic over a payload's values, for field mappings and derived fields.

Expressions come from site files and the catalogue, never from payloads, but they run on
payload values, which can be anything JSON holds. They are evaluated by simpleeval, which
walks Python's own parse tree with a fixed set of operators and functions and its own limits
on powers and string sizes (100,000 characters for + and *; `%` on text, string formatting,
which simpleeval does not bound, is refused), so no expression can reach Python's builtins or
attributes, nor build a string of any size. Each is
parsed once, when the site file loads; evaluating one is a walk of that tree. Every failure,
whatever the values, comes out as `ExpressionError`.
"""

from __future__ import annotations

import ast
import math
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

import simpleeval

_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(\S.*?)?\s*$")


class ExpressionError(ValueError):
    """An expression that does not compile, or that failed on the values it was given."""


def parse_quantity(text: str) -> tuple[float, str | None]:
    """'3.384 V' -> (3.384, 'V'); '1733 mm' -> (1733.0, 'mm'); '21.5' -> (21.5, None)."""
    m = _QUANTITY.match(text)
    if m is None:
        raise ExpressionError(f"{text[:40]!r} is not a number with an optional unit")
    return float(m.group(1)), m.group(2)


def _number(value: object) -> float:
    if isinstance(value, str):
        return parse_quantity(value)[0]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExpressionError(f"number() needs a number or a string, got {type(value).__name__}")
    return float(value)


def _mod(a: Any, b: Any) -> Any:
    """`%` as arithmetic only: on text it is string formatting, which can build a string of any
    size from a payload (`x % 360` with x a long format string built 500 MB)."""
    if isinstance(a, str | bytes):
        raise ExpressionError("% is arithmetic here; the left side is text")
    return a % b


_OPERATORS = {**simpleeval.DEFAULT_OPERATORS, ast.Mod: _mod}


def _clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
    "int": int,
    "float": float,
    "sum": sum,
    "clamp": _clamp,
    "number": _number,
    "isfinite": math.isfinite,
}


class Expression:
    """One compiled expression. `names` are the top-level names it reads: a mapping runs it
    only when all of them are in the payload, so a frame of another type passes it by."""

    __slots__ = ("_local", "_tree", "names", "source")

    def __init__(self, source: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise ExpressionError("an expression must be non-empty text")
        if len(source) > 1000:
            raise ExpressionError("an expression is limited to 1000 characters")
        self.source = source
        # simpleeval keeps the names being evaluated on its instance, so each thread that
        # evaluates (the ingestor's loop, a paho thread in kera-sim watch) gets its own.
        self._local = threading.local()
        evaluator = self._evaluator()
        try:
            tree = ast.parse(source.strip(), mode="eval")
        except SyntaxError as exc:
            raise ExpressionError(f"{source!r} is not an expression: {exc.msg}") from None
        self._check(tree)
        self._tree = evaluator.parse(source.strip())
        self.names = frozenset(
            n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in FUNCTIONS
        )

    def _check(self, tree: ast.AST) -> None:
        """What simpleeval would only refuse at run time, refused when the file loads."""
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                    raise ExpressionError(
                        f"{self.source!r}: only these functions can be called: "
                        f"{', '.join(sorted(FUNCTIONS))}"
                    )
            elif (isinstance(node, ast.Attribute) and node.attr.startswith("_")) or (
                isinstance(node, ast.Name) and node.id.startswith("_")
            ):
                raise ExpressionError(f"{self.source!r}: names starting with _ are not allowed")
            elif isinstance(node, ast.Lambda | ast.NamedExpr | ast.comprehension):
                raise ExpressionError(f"{self.source!r}: only plain arithmetic is allowed")

    def _evaluator(self) -> simpleeval.SimpleEval:
        evaluator = getattr(self._local, "evaluator", None)
        if evaluator is None:
            evaluator = simpleeval.SimpleEval(
                operators=dict(_OPERATORS), functions=dict(FUNCTIONS), names={}
            )
            self._local.evaluator = evaluator
        return evaluator

    def evaluate(self, names: Mapping[str, object]) -> object:
        evaluator = self._evaluator()
        evaluator.names = names
        try:
            return evaluator.eval(self.source, previously_parsed=self._tree)
        except Exception as exc:  # any value can reach here; its failure is this message's
            raise ExpressionError(
                f"{self.source!r} failed: {type(exc).__name__}: {exc}"[:300]
            ) from None
        finally:
            evaluator.names = {}

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"
