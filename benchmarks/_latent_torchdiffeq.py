"""Peer run for ``benchmarks/latent.py``: one training iteration of torchdiffeq's
latent-ODE example (same networks, full batch), timed in a torch environment.

Run by ``benchmarks/latent.py`` with the peers' Python:
``python _latent_torchdiffeq.py DATA.npz --repeat N``; prints one JSON line.
Not part of nodekit (needs torch and torchdiffeq).
"""
import argparse
import json
import statistics
import time

import numpy as np
import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint


class Dynamics(nn.Module):
    def __init__(self, latent=4, hidden=20):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent, hidden), nn.ELU(), nn.Linear(hidden, hidden),
                                 nn.ELU(), nn.Linear(hidden, latent))
        self.nfe = 0

    def forward(self, t, z):
        self.nfe += 1
        return self.net(z)


class Encoder(nn.Module):
    """The example's reverse-time Elman RNN (input: the observation)."""

    def __init__(self, latent=4, obs=2, hidden=25):
        super().__init__()
        self.i2h = nn.Linear(obs + hidden, hidden)
        self.h2o = nn.Linear(hidden, 2 * latent)
        self.hidden = hidden

    def forward(self, x):
        h = torch.zeros(x.shape[0], self.hidden, dtype=x.dtype)
        for j in reversed(range(x.shape[1])):
            h = torch.tanh(self.i2h(torch.cat([x[:, j], h], dim=1)))
        return self.h2o(h)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--adjoint", action="store_true",
                   help="also time odeint_adjoint (minutes per iteration at full batch)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    d = np.load(args.data)
    x, t = torch.tensor(d["x"]), torch.tensor(d["t"])
    rtol, atol, noise = float(d["rtol"]), float(d["atol"]), float(d["noise_std"])
    latent = 4
    out = {}
    solvers = [("backprop through the solver (example default)", odeint)]
    if args.adjoint:
        solvers.append(("odeint_adjoint", odeint_adjoint))
    for name, solve in solvers:
        func, enc = Dynamics(), Encoder()
        dec = nn.Sequential(nn.Linear(latent, 20), nn.ReLU(), nn.Linear(20, 2))
        params = list(func.parameters()) + list(enc.parameters()) + list(dec.parameters())
        opt = torch.optim.Adam(params, lr=0.01)

        def step(func=func, enc=enc, dec=dec, opt=opt, solve=solve):
            opt.zero_grad()
            q = enc(x)
            mu, logvar = q[:, :latent], q[:, latent:]
            z0 = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            zs = solve(func, z0, t, rtol=rtol, atol=atol).permute(1, 0, 2)
            xs = dec(zs)
            logpx = (-0.5 * ((x - xs) / noise) ** 2 - np.log(noise)
                     - 0.5 * np.log(2 * np.pi)).sum(-1).sum(-1)
            kl = 0.5 * (mu ** 2 + torch.exp(logvar) - logvar - 1).sum(-1)
            loss = torch.mean(-logpx + kl)
            loss.backward()
            opt.step()

        step()
        times = []
        for _ in range(args.repeat):
            func.nfe = 0
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        out[f"torchdiffeq {name}"] = {"seconds": statistics.median(times), "nfe": func.nfe}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
