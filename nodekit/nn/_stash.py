"""Intermediate results of a primitive's forward pass kept for its VJP.

An autograd primitive returns one array, but its VJP often needs more of the
forward pass (the states of a recurrent run, a network's activations).
Autograd builds the VJP right after the forward call, from the same output
object, so the forward pass can leave its intermediates here, keyed by the
output's ``id``, and the VJP take them back.  An entry is dropped when the
VJP takes it or when the output is freed (a call without gradients keeps
its intermediates only as long as its result lives).  A VJP that finds
nothing (a result it did not produce) recomputes the forward pass.
"""
import weakref

_KEPT = {}


def keep(out, intermediates):
    """Keep ``intermediates`` for the VJP of the call that returned ``out``; returns ``out``."""
    key = id(out)
    _KEPT[key] = intermediates
    weakref.finalize(out, _KEPT.pop, key, None)
    return out


def take(ans):
    """The intermediates kept for ``ans`` (removed), or None."""
    return _KEPT.pop(id(ans), None)
