"""``nk.nn``: small neural networks compiled into ``nk.ODE`` dynamics.

Layers (:class:`Dense`, :class:`TimeDense`, activations, elementwise input maps
such as :class:`Power`) are composed by :class:`Sequential` into dynamics
``f(t, y)`` acting row by row on a batched state (B, d).  ``model.ode`` is an
``nk.ODE`` whose ``rhs`` and ``vjp`` kernels are generated for the
architecture, compiled by Numba in nopython mode and cached on disk;
``model.apply`` is the same math in autograd-NumPy.

>>> from nodekit.nn import Sequential, Dense, Power
>>> model = Sequential(Power(3), Dense(2, 50), "tanh", Dense(50, 2))
>>> model.n_params
252
"""
from .layers import (ACTIVATIONS, ELU, Dense, Elementwise, Layer, Power, ReLU, Sigmoid, Sin,
                     Softplus, Tanh, TimeDense, activation)
from .model import INIT_SCHEMES, MLP, Chain, Sequential

__all__ = ["ACTIVATIONS", "Chain", "Dense", "ELU", "Elementwise", "INIT_SCHEMES", "Layer", "MLP",
           "Power", "ReLU", "Sequential", "Sigmoid", "Sin", "Softplus", "Tanh", "TimeDense",
           "activation"]
