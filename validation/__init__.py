"""nodekit's analytic validation suite: closed-form cases derived and checked
with SymPy, and reports comparing every solver against them.

Run it as ``python -m validation`` (or ``nodekit validate``).
"""
