"""Safe boolean expressions over tags, evaluated on NumPy columns.

``guard_closed == 0 and speed > 10`` is parsed with :mod:`ast` and only a short
list of node kinds is accepted: names, numbers, comparisons, ``and``/``or``/
``not``, arithmetic and a few functions. The tree is compiled into closures over
arrays; nothing is ever passed to ``eval``. A missing value (NaN) makes every
comparison false, so an unknown input never raises an alarm by itself.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from shopfloor.core.errors import ShopfloorError

Array = npt.NDArray[np.float64]
Env = dict[str, Array]
Node = Callable[[Env], Array]

MAX_NODES = 200


class ExpressionError(ShopfloorError):
    """An expression that is not allowed or does not parse."""


def _truth(a: Array) -> npt.NDArray[np.bool_]:
    return np.asarray((a != 0) & ~np.isnan(a))


def _fold(fn: Callable[[Any, Any], Any]) -> Callable[..., Array]:
    def call(*args: Array) -> Array:
        out = args[0]
        for a in args[1:]:
            out = fn(out, a)
        return np.asarray(out, dtype=np.float64)

    return call


FUNCTIONS: dict[str, tuple[Callable[..., Array], int, int]] = {  # name -> (function, min args, max args)
    "abs": (lambda a: np.abs(a), 1, 1),
    "sqrt": (lambda a: np.sqrt(a), 1, 1),
    "min": (_fold(np.fmin), 2, 16),
    "max": (_fold(np.fmax), 2, 16),
    "isnan": (lambda a: np.isnan(a).astype(np.float64), 1, 1),
}
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.Mod: np.fmod, ast.Pow: np.power,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}


@dataclass(frozen=True)
class Expression:
    source: str
    names: frozenset[str]
    _root: Node

    def evaluate(self, env: Env) -> npt.NDArray[np.bool_]:
        """Truth of the expression for each row of the columns in env (name -> float64 array)."""
        with np.errstate(all="ignore"):
            return _truth(np.asarray(self._root(env), dtype=np.float64))


def parse_expression(source: str) -> Expression:
    """Parse and check an expression; ExpressionError says which part is not allowed."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"expression does not parse: {exc.msg}") from None
    count = sum(1 for _ in ast.walk(tree))
    if count > MAX_NODES:
        raise ExpressionError(f"expression too long ({count} nodes, at most {MAX_NODES})")
    names: set[str] = set()
    root = _compile(tree.body, names)
    if not names:
        raise ExpressionError("expression names no tag")
    return Expression(source, frozenset(names), root)


def _compile(node: ast.expr, names: set[str]) -> Node:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, complex):
        value = float(node.value)
        return lambda env: np.float64(value)  # type: ignore[return-value]
    if isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            raise ExpressionError(f"{node.id!r} is a function: call it")
        name = node.id
        names.add(name)
        return lambda env: env[name]
    if isinstance(node, ast.BoolOp):
        parts = [_compile(v, names) for v in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or

        def boolop(env: Env) -> Array:
            out = _truth(np.asarray(parts[0](env), np.float64))
            for p in parts[1:]:
                out = combine(out, _truth(np.asarray(p(env), np.float64)))
            return out.astype(np.float64)

        return boolop
    if isinstance(node, ast.UnaryOp):
        inner = _compile(node.operand, names)
        if isinstance(node.op, ast.Not):
            return lambda env: (~_truth(np.asarray(inner(env), np.float64))).astype(np.float64)
        if isinstance(node.op, ast.USub):
            return lambda env: -inner(env)
        if isinstance(node.op, ast.UAdd):
            return inner
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        fn = _BINARY[type(node.op)]
        left, right = _compile(node.left, names), _compile(node.right, names)
        return lambda env: fn(left(env), right(env))
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        operands = [_compile(node.left, names), *(_compile(c, names) for c in node.comparators)]
        ops = [_COMPARE[type(op)] for op in node.ops]

        def compare(env: Env) -> Array:  # a < b < c is (a < b) and (b < c)
            values = [o(env) for o in operands]
            out = np.asarray(ops[0](values[0], values[1]))
            for i, op in enumerate(ops[1:], start=1):
                out = out & np.asarray(op(values[i], values[i + 1]))
            return out.astype(np.float64)

        return compare
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
        fn_name = node.func.id
        fn, lo, hi = FUNCTIONS[fn_name]
        if node.keywords or not lo <= len(node.args) <= hi:
            raise ExpressionError(f"{fn_name}() takes {lo}..{hi} positional arguments")
        args = [_compile(a, names) for a in node.args]
        return lambda env: fn(*(a(env) for a in args))
    raise ExpressionError(f"not allowed in an expression: {ast.unparse(node)!r} ({type(node).__name__})")
