"""torchdiffeq's CNF example as a timing peer (run by ``benchmarks/cnf.py`` in the
interpreter that has torch and torchdiffeq; never imported by nodekit).

The model follows torchdiffeq's ``examples/cnf.py``: a hypernetwork of ``t``
(``Linear(1, H) - tanh - Linear(H, H) - tanh - Linear(H, 3 M d + M)``) gives
``M`` planar units; ``f = mean_m u_m tanh(w_m . z + b_m)``; the trace of
``df/dz`` by ``d`` autograd calls with ``create_graph=True``.  Prints one JSON
line: ms per iteration (median) and NFE, for backprop through the solver and
for ``odeint_adjoint``.

Usage: ``python _cnf_torchdiffeq.py BATCHES.npz [--repeat N] [--dtype float32|float64]``.
"""
import argparse
import json
import statistics
import time

import numpy as np
import torch
import torchdiffeq
from torch import nn


class HyperNetwork(nn.Module):
    def __init__(self, dim, hidden, width):
        super().__init__()
        self.dim, self.width = dim, width
        self.bs = width * dim
        self.fc1 = nn.Linear(1, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, 3 * self.bs + width)

    def forward(self, t):
        p = torch.tanh(self.fc1(t.reshape(1, 1)))
        p = torch.tanh(self.fc2(p))
        p = self.fc3(p).reshape(-1)
        W = p[:self.bs].reshape(self.width, self.dim, 1)
        U = p[self.bs:2 * self.bs].reshape(self.width, 1, self.dim)
        G = p[2 * self.bs:3 * self.bs].reshape(self.width, 1, self.dim)
        B = p[3 * self.bs:].reshape(self.width, 1, 1)
        return W, B, U * torch.sigmoid(G)


class CNFFunc(nn.Module):
    def __init__(self, dim=2, hidden=32, width=64):
        super().__init__()
        self.width = width
        self.hyper = HyperNetwork(dim, hidden, width)
        self.nfe = 0

    def forward(self, t, states):
        self.nfe += 1
        z = states[0]
        with torch.set_grad_enabled(True):
            z.requires_grad_(True)
            W, B, U = self.hyper(t)
            Z = z.unsqueeze(0).repeat(self.width, 1, 1)
            h = torch.tanh(torch.matmul(Z, W) + B)
            dz = torch.matmul(h, U).mean(0)
            tr = 0.0
            for i in range(z.shape[1]):
                tr = tr + torch.autograd.grad(dz[:, i].sum(), z, create_graph=True)[0][:, i]
        return dz, -tr.view(-1, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("batches")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    xs = np.load(args.batches)["x"]
    t1, t0 = 10.0, 0.0
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "dtype": args.dtype}
    for name, solver in (("backprop", torchdiffeq.odeint), ("adjoint", torchdiffeq.odeint_adjoint)):
        torch.manual_seed(0)
        func = CNFFunc().to(dtype)
        state0 = {k: v.clone() for k, v in func.state_dict().items()}
        opt = torch.optim.Adam(func.parameters(), lr=1e-3)
        base = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=dtype),
                                                      0.1 * torch.eye(2, dtype=dtype))
        times, nfe_f, nfe_b = [], [], []
        for rep in range(args.repeat + 1):
            func.load_state_dict(state0)
            opt = torch.optim.Adam(func.parameters(), lr=1e-3)
            for x in xs:
                x = torch.tensor(x, dtype=dtype)
                t_start = time.perf_counter()
                opt.zero_grad()
                func.nfe = 0
                zt, lt = solver(func, (x, torch.zeros(x.shape[0], 1, dtype=dtype)),
                                torch.tensor([t1, t0], dtype=dtype), atol=1e-5, rtol=1e-5,
                                method="dopri5")
                nf = func.nfe
                loss = -(base.log_prob(zt[-1]) - lt[-1].view(-1)).mean()
                loss.backward()
                opt.step()
                if rep:   # the first pass warms up
                    times.append(time.perf_counter() - t_start)
                    nfe_f.append(nf)
                    nfe_b.append(func.nfe - nf)
        out[name] = {"ms": 1000 * statistics.median(times), "nfe_forward": statistics.mean(nfe_f),
                     "nfe_backward": statistics.mean(nfe_b)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
