#!/usr/bin/python3
"""PyTorch 1.13 reference for vae_dist's fidelity check.

Trains the PyTorch example VAE (784-400-20, relu, Bernoulli decoder, Adam lr 1e-3,
batch 128, loss summed over the batch as in the example) on Fashion-MNIST read
straight from the Debian IDX files, and prints one JSON line per epoch with the
test -ELBO per sample (reconstruction + KL, one z sample per test image).

Usage: /usr/bin/python3 bench/pytorch_ref.py [--epochs 10] [--seed 1] [--threads 1]
(threads of OpenBLAS, OpenMP and torch pinned and checked: bench_threads.py)
Exits 77 (the "skipped" code) when torch is not installed.
"""
import argparse, gzip, json, os, struct, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_threads  # noqa: E402

if __name__ == "__main__":
    bench_threads.pin_from_argv()
try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError:
    print("pytorch_ref: python3-torch not installed; skipping", file=sys.stderr)
    sys.exit(77)

DIR = "/usr/share/datasets/fashion-mnist"


def idx_images(path):
    with gzip.open(path, "rb") as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        assert magic == 2051, path
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(n, rows * cols)


class VAE(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(784, 400)
        self.fc21 = torch.nn.Linear(400, 20)
        self.fc22 = torch.nn.Linear(400, 20)
        self.fc3 = torch.nn.Linear(20, 400)
        self.fc4 = torch.nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.fc4(F.relu(self.fc3(z))), mu, logvar


def loss_terms(logits, x, mu, logvar):
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return rec, kl


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    bench_threads.check(a.threads, torch)
    train = torch.from_numpy(idx_images(f"{DIR}/train-images-idx3-ubyte.gz").astype(np.float32) / 255.0)
    test = torch.from_numpy(idx_images(f"{DIR}/t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0)
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(1, a.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(train.shape[0])
        for i in range(0, train.shape[0], a.batch):
            x = train[perm[i:i + a.batch]]
            logits, mu, logvar = model(x)
            rec, kl = loss_terms(logits, x, mu, logvar)
            opt.zero_grad()
            (rec + kl).backward()
            opt.step()
        dt = time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            rec_s = kl_s = 0.0
            for i in range(0, test.shape[0], 1000):
                x = test[i:i + 1000]
                logits, mu, logvar = model(x)
                rec, kl = loss_terms(logits, x, mu, logvar)
                rec_s += rec.item(); kl_s += kl.item()
        n = test.shape[0]
        print(json.dumps({"epoch": epoch, "test_neg_elbo": (rec_s + kl_s) / n, "test_rec": rec_s / n,
                          "test_kl": kl_s / n, "train_samples_per_s": train.shape[0] / dt}), flush=True)


if __name__ == "__main__":
    main()
