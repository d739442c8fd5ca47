"""A whitelist parser for the expression strings of ``ODESystem.from_strings``.

Strings are never given to ``eval``, ``sympify`` or ``parse_expr`` (which
evaluate Python and give undeclared names SymPy meanings: ``E`` is Euler's
number, ``S``, ``N``, ``I``, ``beta`` and ``gamma`` are SymPy objects).  Instead
Python's :mod:`ast` parses the text, every node is checked against a short
whitelist, and the SymPy expression is built here from:

* numbers (``int`` and ``float`` literals);
* the declared names: states, parameters and the time;
* the functions of :data:`FUNCTIONS` and the constants of :data:`CONSTANTS`
  (a declared name takes precedence over both);
* ``+ - * / **`` and unary ``+ -``.

Anything else (attributes, subscripts, strings, lambdas, comparisons, ``^``,
keyword arguments, ...) is rejected with a message naming the token.  A
declared name that is a Python keyword (``lambda``) is accepted: it is
renamed before parsing.
"""
import ast
import io
import keyword
import tokenize

import sympy as sp

#: Functions an expression string may call, by name.
FUNCTIONS = {
    "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "asin": sp.asin, "acos": sp.acos,
    "atan": sp.atan, "atan2": sp.atan2, "sinh": sp.sinh, "cosh": sp.cosh,
    "tanh": sp.tanh, "asinh": sp.asinh, "acosh": sp.acosh, "atanh": sp.atanh,
    "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "abs": sp.Abs, "Abs": sp.Abs,
    "min": sp.Min, "Min": sp.Min, "max": sp.Max, "Max": sp.Max, "sign": sp.sign,
    "floor": sp.floor, "ceiling": sp.ceiling, "Heaviside": sp.Heaviside,
    "erf": sp.erf, "erfc": sp.erfc,
}
#: Constants an expression string may use, by name.
CONSTANTS = {"pi": sp.pi}

_BINARY = {ast.Add: sp.Add, ast.Sub: lambda a, b: a - b, ast.Mult: sp.Mul,
           ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a ** b}
#: Operators outside the whitelist: their token and a hint.
_XOR_HINT = " ('^' is Python's exclusive or: write powers with '**', e.g. x**2)"
_SYMBOLS = {ast.BitXor: ("'^'", _XOR_HINT),
            ast.FloorDiv: ("'//'", " (write '/', or floor(a/b))"), ast.Mod: ("'%'", ""),
            ast.MatMult: ("'@'", ""), ast.BitAnd: ("'&'", ""), ast.BitOr: ("'|'", ""),
            ast.LShift: ("'<<'", ""), ast.RShift: ("'>>'", ""), ast.Invert: ("'~'", ""),
            ast.Not: ("'not'", "")}
#: Largest |exponent| of a power of two numbers that is evaluated (9**9**9 would not end).
_MAX_NUMERIC_EXPONENT = 1024
_KEYWORD_PREFIX = "__nk_keyword_"


class _Reject(ValueError):
    """An expression string breaks the whitelist; the message names the token."""


def _rename_keywords(text, names):
    """Rename declared names that are Python keywords (``lambda``) so that
    ``ast`` can parse ``text``; other tokens are kept as written."""
    if not any(keyword.iskeyword(n) for n in names):
        return text
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return text  # ast.parse reports it
    out = [(tok.type, _KEYWORD_PREFIX + tok.string
            if tok.type == tokenize.NAME and tok.string in names
            and keyword.iskeyword(tok.string) else tok.string) for tok in tokens]
    return tokenize.untokenize(out).strip()


class _Builder:
    """Builds a SymPy expression from a checked ``ast`` tree."""

    def __init__(self, table, declared_text):
        self.table = table              # name (keywords renamed) -> sympy.Symbol
        self.declared_text = declared_text

    def build(self, node):
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise _Reject(f"uses {self._token(node)}, which is not allowed in an expression. "
                          f"{self._allowed()}")
        return method(node)

    def _token(self, node):
        text = ast.unparse(node)
        kind = type(node).__name__
        return f"{text!r} ({kind} node)" if len(text) < 60 else f"a {kind} node"

    def _operator(self, op):
        token, hint = _SYMBOLS.get(type(op), (type(op).__name__, ""))
        return _Reject(f"uses the operator {token}, which is not allowed{hint}. "
                       f"{self._allowed()}")

    def _allowed(self):
        return (f"Allowed: numbers, the declared names ({self.declared_text}), "
                "+ - * / **, and the functions "
                f"{', '.join(sorted(FUNCTIONS))} and constants {', '.join(CONSTANTS)}.")

    def _Expression(self, node):
        return self.build(node.body)

    def _Constant(self, node):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Reject(f"uses the literal {value!r}; only real numbers are allowed.")
        return sp.Integer(value) if isinstance(value, int) else sp.Float(value)

    def _Name(self, node):
        name = node.id
        if name in self.table:
            return self.table[name]
        if name in CONSTANTS:
            return CONSTANTS[name]
        if name in FUNCTIONS:
            raise _Reject(f"uses the function {name} without calling it; write {name}(...).")
        raise _Reject(f"uses the name {name!r}, which is not declared. Declared: "
                      f"{self.declared_text}. Add it to `params` (or to the states), or "
                      "substitute a number.")

    def _BinOp(self, node):
        op = type(node.op)
        if op not in _BINARY:
            raise self._operator(node.op)
        left, right = self.build(node.left), self.build(node.right)
        if (op is ast.Pow and left.is_Number and right.is_Number
                and abs(right) > _MAX_NUMERIC_EXPONENT):
            raise _Reject(f"raises the number {left} to the power {right}; exponents of "
                          f"numbers are limited to {_MAX_NUMERIC_EXPONENT} in magnitude.")
        return _BINARY[op](left, right)

    def _UnaryOp(self, node):
        value = self.build(node.operand) if isinstance(node.op, (ast.UAdd, ast.USub)) else None
        if isinstance(node.op, ast.UAdd):
            return value
        if isinstance(node.op, ast.USub):
            return -value
        raise self._operator(node.op)

    def _Call(self, node):
        if not isinstance(node.func, ast.Name):
            raise _Reject(f"calls {self._token(node.func)}; only the functions "
                          f"{', '.join(sorted(FUNCTIONS))} may be called.")
        name = node.func.id
        if name in self.table:
            raise _Reject(f"calls {name}, which is a declared name, not a function (write "
                          f"{name}, not {name}(...); the time dependence is implied).")
        if name not in FUNCTIONS:
            raise _Reject(f"calls the unknown function {name!r}. Allowed functions: "
                          f"{', '.join(sorted(FUNCTIONS))}.")
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise _Reject(f"passes keyword or starred arguments to {name}; give plain "
                          "positional arguments.")
        args = [self.build(a) for a in node.args]
        try:
            return FUNCTIONS[name](*args)
        except (TypeError, ValueError) as exc:
            raise _Reject(f"calls {name} with {len(args)} argument(s) ({exc}).") from None


def parse_expression(text, table, where):
    """The SymPy expression of ``text``, built only from whitelisted parts.

    Parameters
    ----------
    text : str
        The expression, Python syntax (``a*x - b*x*y``, ``x**2``, ``sin(w*t)``).
    table : dict of str to sympy.Symbol
        The declared names (states, parameters, time).
    where : str
        Names the expression in messages (e.g. ``"`rhs['x']`"``).

    Returns
    -------
    sympy.Expr

    Raises
    ------
    ValueError
        If ``text`` is not valid syntax, or uses anything outside the
        whitelist (the message names the token and lists what is allowed).
    """
    declared_text = ", ".join(table) or "(none)"
    renamed = {(_KEYWORD_PREFIX + k if keyword.iskeyword(k) else k): v for k, v in table.items()}
    prefix = f"{where} = {text!r}"
    try:
        tree = ast.parse(_rename_keywords(text, set(table)).strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"{prefix} could not be parsed: {exc.msg} (column {exc.offset}). "
                         "Write a Python-syntax expression such as 'a*x - b*x*y' or "
                         "'x**2'.") from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise ValueError(f"{prefix} could not be parsed ({type(exc).__name__}: the "
                         "expression is too long or too deeply nested).") from None
    try:
        return _Builder(renamed, declared_text).build(tree)
    except _Reject as exc:
        raise ValueError(f"{prefix} {exc}") from None
    except RecursionError:
        raise ValueError(f"{prefix} is too deeply nested.") from None
