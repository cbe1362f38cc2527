#!/usr/bin/python3
"""PyTorch 1.13 training throughput on the same work as vae_dist's benchmark.

The VAE of bench/pytorch_ref.py (any hidden list), Bernoulli, Adam 1e-3, on
Fashion-MNIST images in memory; global batch B. Single process, or one DDP
rank (gloo) started by hand: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT in the
environment (torchrun from Debian's package is broken on Python 3.11). Each
rank takes B / WORLD_SIZE samples a step with --threads threads (OpenBLAS,
OpenMP and torch's pool pinned and checked: bench_threads.py). Rank 0 prints
one JSON line: samples/s over the timed steps (after warm-up) and the thread
counts the libraries reported.
Exits 77 when torch is missing.
"""
import argparse, json, os, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_threads  # noqa: E402

bench_threads.pin_from_argv()
try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError:
    print("pytorch_bench: python3-torch not installed; skipping", file=sys.stderr)
    sys.exit(77)

from pytorch_ref import DIR, idx_images  # noqa: E402


class VAE(torch.nn.Module):
    def __init__(self, hidden, latent, dim=784):
        super().__init__()
        enc, prev = [], dim
        for h in hidden:
            enc += [torch.nn.Linear(prev, h), torch.nn.ReLU()]
            prev = h
        self.enc = torch.nn.Sequential(*enc)
        self.head = torch.nn.Linear(prev, 2 * latent)
        dec, prev = [], latent
        for h in reversed(hidden):
            dec += [torch.nn.Linear(prev, h), torch.nn.ReLU()]
            prev = h
        dec.append(torch.nn.Linear(prev, dim))
        self.dec = torch.nn.Sequential(*dec)
        self.latent = latent

    def forward(self, x):
        mu, logvar = self.head(self.enc(x)).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.dec(z), mu, logvar


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", default="400")
    ap.add_argument("--latent", type=int, default=20)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--blas-threads", type=int, default=0, help="OpenBLAS threads (default: --threads)")
    a = ap.parse_args()
    threads = bench_threads.check(a.threads, torch, a.blas_threads or a.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(1)
    x_all = torch.from_numpy(idx_images(f"{DIR}/train-images-idx3-ubyte.gz").astype(np.float32) / 255.0)
    model = VAE([int(h) for h in a.hidden.split(",")], a.latent)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    b = a.batch // world
    g = torch.Generator().manual_seed(rank)
    t0 = None
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            if world > 1:
                torch.distributed.barrier()
            t0 = time.perf_counter()
        idx = torch.randint(0, x_all.shape[0], (b,), generator=g)
        x = x_all[idx]
        logits, mu, logvar = model(x)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        opt.zero_grad()
        ((rec + kl) / a.batch).backward()
        opt.step()
    if world > 1:
        torch.distributed.barrier()
    dt = time.perf_counter() - t0
    if rank == 0:
        print(json.dumps({"bench": "pytorch", "world_size": world, "hidden": a.hidden, "batch": a.batch,
                          "samples_per_s": a.steps * a.batch / dt, "threads": threads}), flush=True)
    if world > 1:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
