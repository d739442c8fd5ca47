"""Tape kernels: large symbolic systems evaluated by one compiled interpreter.

Numba compiles straight-line code at a cost of a few milliseconds per
operation (typing, lowering and LLVM each grow with the number of
statements), so the straight-line kernels of a dense linear system of 30
states and 900 parameters (about 3,000 operations in ``rhs`` and 4,500 in
``vjp``) take tens of seconds to compile.  A *tape* is the same computation
as data: an array of instructions ``(opcode, destination, operand, operand)``
over a register file, plus an array of constants.  :func:`run`, compiled once
for every system (and cached on disk), executes it; the generated kernel only
forwards its arguments, so it compiles in a fraction of a second whatever the
system's size.  Evaluation is slower than straight-line code (an indexed
register file and a branch per instruction instead of machine registers),
which is why only large kernels use it (see ``codegen.TAPE_THRESHOLD``).

Identical subexpressions get one register (hash-consing), a cheap common-
subexpression elimination without ``sympy.cse``'s cost on large systems.
"""
import math
from typing import NamedTuple

import numba
import numpy as np
import sympy as sp

# opcodes: constants, arithmetic, functions, stores.  Generated modules hold
# tapes in this format: changing it requires a new codegen.GENERATOR_VERSION.
(CONST, ADD, MUL, INV, POW, SQUARE, SQRT,
 SIN, COS, TAN, ASIN, ACOS, ATAN, SINH, COSH, TANH, ASINH, ACOSH, ATANH, EXP, LOG,
 ABS, FLOOR, CEIL, SIGN, ERF, ERFC, ATAN2, MAX, MIN, HEAVISIDE, STORE1, STORE2,
 RETURN) = range(34)

_UNARY = {sp.sin: SIN, sp.cos: COS, sp.tan: TAN, sp.asin: ASIN, sp.acos: ACOS,
          sp.atan: ATAN, sp.sinh: SINH, sp.cosh: COSH, sp.tanh: TANH, sp.asinh: ASINH,
          sp.acosh: ACOSH, sp.atanh: ATANH, sp.exp: EXP, sp.log: LOG, sp.Abs: ABS,
          sp.floor: FLOOR, sp.ceiling: CEIL, sp.sign: SIGN, sp.erf: ERF, sp.erfc: ERFC}
_NARY = {sp.Add: ADD, sp.Mul: MUL, sp.Max: MAX, sp.Min: MIN}


class Unsupported(Exception):
    """An expression the tape cannot hold (``Piecewise``, ...): use straight-line code."""


class Tape(NamedTuple):
    """A computation as data: ``code`` rows ``(opcode, dst, i, j)`` over
    ``n_registers`` float registers, with constants ``consts``.

    Row 0 is a header ``(n_y, n_theta, n_a, 0)``: registers ``0``, ``1 ..
    n_y``, then ``n_theta`` and ``n_a`` more hold ``t``, ``y``, ``theta``
    and ``a`` (copied in before the first instruction, so that no
    instruction loads); temporaries follow."""
    code: np.ndarray
    consts: np.ndarray
    n_registers: int


class _Recorder:
    def __init__(self, inputs):
        self.code, self.consts, self.const_memo = [], [], {}
        self.memo = {s: k for k, s in enumerate(inputs)}  # t, y, theta, a: registers 0, 1, ...
        self.n = len(inputs)

    def emit(self, op, i=0, j=0):
        self.code.append((op, self.n, i, j))
        self.n += 1
        return self.n - 1

    def const(self, value):
        value = float(value)
        key = repr(value)
        if key not in self.const_memo:
            self.consts.append(value)
            self.const_memo[key] = self.emit(CONST, len(self.consts) - 1)
        return self.const_memo[key]

    def reg(self, e):
        if e in self.memo:
            return self.memo[e]
        r = self._record(e)
        self.memo[e] = r
        return r

    def _record(self, e):
        if e.is_Number or e.is_NumberSymbol:
            return self.const(e)
        func = type(e)
        if func in _NARY:
            regs = [self.reg(a) for a in e.args]
            r = regs[0]
            for other in regs[1:]:
                r = self.emit(_NARY[func], r, other)
            return r
        if func is sp.Pow:
            return self._pow(*e.args)
        if func in _UNARY and len(e.args) == 1:
            return self.emit(_UNARY[func], self.reg(e.args[0]))
        if func is sp.atan2:
            return self.emit(ATAN2, self.reg(e.args[0]), self.reg(e.args[1]))
        if func is sp.Heaviside:
            h0 = e.args[1] if len(e.args) > 1 else sp.Rational(1, 2)
            return self.emit(HEAVISIDE, self.reg(e.args[0]), self.reg(h0))
        raise Unsupported(f"{func.__name__} is not a tape instruction")

    def _pow(self, base, exp):
        b = self.reg(base)
        if exp == -1:
            return self.emit(INV, b)
        if exp == 2:
            return self.emit(SQUARE, b)
        if exp == sp.Rational(1, 2):
            return self.emit(SQRT, b)
        if exp == sp.Rational(-1, 2):
            return self.emit(INV, self.emit(SQRT, b))
        return self.emit(POW, b, self.reg(exp))


def record(targets, exprs, syms):
    """The tape computing ``exprs`` and storing them at ``targets``.

    Parameters
    ----------
    targets : list of (int, int)
        ``(1, i)`` stores into the first output array at ``i``, ``(2, k)``
        into the second, ``(0, 0)`` returns the value.
    exprs : list of sympy.Expr
        In the system's dummy symbols (``syms`` from ``codegen._symbols``).
    syms : codegen._Symbols

    Returns
    -------
    Tape

    Raises
    ------
    Unsupported
        If an expression holds a function the tape has no instruction for.
    """
    uses_a = any(where == 0 for where, _ in targets)  # the VJP (it returns a.df/dt) reads a
    adj = list(syms.adj) if uses_a else []
    rec = _Recorder([syms.t, *syms.ys, *syms.ths, *adj])
    rec.code.append((len(syms.ys), len(syms.ths), len(adj), 0))
    stores = []
    for (where, index), e in zip(targets, exprs):
        stores.append(({1: STORE1, 2: STORE2, 0: RETURN}[where], index, rec.reg(e)))
    for op, index, r in stores:
        rec.code.append((op, index, r, 0))
    code = np.array(rec.code, dtype=np.int64).reshape(-1, 4)
    return Tape(code, np.array(rec.consts, dtype=np.float64), rec.n)


def source(tape, name):
    """Module-level source defining ``name`` (the code) and ``name_consts``."""
    flat = ", ".join(str(int(v)) for v in tape.code.ravel())
    consts = ", ".join(repr(float(v)) for v in tape.consts)
    consts = consts.replace("nan", "math.nan").replace("inf", "math.inf")
    return [f"{name} = np.array([{flat}], dtype=np.int64).reshape(-1, 4)",
            f"{name}_consts = np.array([{consts}], dtype=np.float64)",
            f"{name}_registers = {tape.n_registers}"]


@numba.njit(cache=True, _nrt=True, error_model="numpy", fastmath=False)
def run(code, consts, n_registers, t, y, theta, a, out1, out2):
    """Execute a tape: loads from ``t, y, theta, a``, stores into ``out1`` and
    ``out2``; returns the value of a ``RETURN`` instruction (else 0)."""
    r = np.empty(n_registers)
    n_y, n_theta, n_a = code[0, 0], code[0, 1], code[0, 2]
    r[0] = t
    for k in range(n_y):
        r[1 + k] = y[k]
    for k in range(n_theta):
        r[1 + n_y + k] = theta[k]
    for k in range(n_a):
        r[1 + n_y + n_theta + k] = a[k]
    ret = 0.0
    for k in range(1, code.shape[0]):
        op, d, i, j = code[k, 0], code[k, 1], code[k, 2], code[k, 3]
        if op == MUL:
            r[d] = r[i] * r[j]
        elif op == ADD:
            r[d] = r[i] + r[j]
        elif op == CONST:
            r[d] = consts[i]
        elif op == STORE1:
            out1[d] = r[i]
        elif op == STORE2:
            out2[d] = r[i]
        elif op == RETURN:
            ret = r[i]
        elif op == INV:
            r[d] = 1.0 / r[i]
        elif op == SQUARE:
            r[d] = r[i] * r[i]
        elif op == POW:
            r[d] = r[i] ** r[j]
        elif op == SQRT:
            r[d] = np.sqrt(r[i])
        elif op == EXP:
            r[d] = np.exp(r[i])
        elif op == LOG:
            r[d] = np.log(r[i])
        elif op == SIN:
            r[d] = np.sin(r[i])
        elif op == COS:
            r[d] = np.cos(r[i])
        elif op == TAN:
            r[d] = np.tan(r[i])
        elif op == ASIN:
            r[d] = np.arcsin(r[i])
        elif op == ACOS:
            r[d] = np.arccos(r[i])
        elif op == ATAN:
            r[d] = np.arctan(r[i])
        elif op == SINH:
            r[d] = np.sinh(r[i])
        elif op == COSH:
            r[d] = np.cosh(r[i])
        elif op == TANH:
            r[d] = np.tanh(r[i])
        elif op == ASINH:
            r[d] = np.arcsinh(r[i])
        elif op == ACOSH:
            r[d] = np.arccosh(r[i])
        elif op == ATANH:
            r[d] = np.arctanh(r[i])
        elif op == ABS:
            r[d] = abs(r[i])
        elif op == FLOOR:
            r[d] = np.floor(r[i])
        elif op == CEIL:
            r[d] = np.ceil(r[i])
        elif op == SIGN:
            x = r[i]
            r[d] = 1.0 if x > 0.0 else (-1.0 if x < 0.0 else (0.0 if x == 0.0 else x))
        elif op == ERF:
            r[d] = math.erf(r[i])
        elif op == ERFC:
            r[d] = math.erfc(r[i])
        elif op == ATAN2:
            r[d] = np.arctan2(r[i], r[j])
        elif op == MAX:
            r[d] = max(r[i], r[j])
        elif op == MIN:
            r[d] = min(r[i], r[j])
        elif op == HEAVISIDE:
            x = r[i]
            r[d] = 1.0 if x > 0.0 else (0.0 if x < 0.0 else (r[j] if x == 0.0 else x))
    return ret

