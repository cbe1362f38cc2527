#!/usr/bin/python3
"""PyTorch 1.13 reference for vae_dist's convolutional VAE (configs/conv.ini).

The model, in vae_dist's conv layout: Conv2d(C, c1, k, s, p), ReLU, ...,
flatten, Linear(F, 2Z); Linear(Z, F), ReLU, reshape, ConvTranspose2d back
through the stages (ReLU between), Bernoulli logits. Adam 1e-3, loss summed
over the batch divided by the batch (vae_dist's mean; Adam is scale-free).

  --epochs E        fidelity: train on Fashion-MNIST (IDX files of
                    dataset-fashion-mnist), print one JSON line per epoch with
                    the test -ELBO per sample (one z per test image)
  --steps N         speed: N timed steps after --warmup on images of --image
                    C,H,W (Fashion-MNIST for 1,28,28, else random pixels),
                    print one JSON line with samples/s

Threads: --threads T pins OpenBLAS, OpenMP and torch's intra-op pool and
checks each through the library's own query (bench_threads.py); the JSON
line reports what they said.
Exits 77 when torch is missing.
"""
import argparse, json, os, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=0)
ap.add_argument("--steps", type=int, default=0)
ap.add_argument("--warmup", type=int, default=10)
ap.add_argument("--image", default="1,28,28")
ap.add_argument("--channels", default="32,64")
ap.add_argument("--latent", type=int, default=20)
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--threads", type=int, default=1)
A = ap.parse_args()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_threads  # noqa: E402

bench_threads.pin_env(A.threads)
try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError:
    print("pytorch_conv: python3-torch not installed; skipping", file=sys.stderr)
    sys.exit(77)

from pytorch_ref import DIR, idx_images, loss_terms  # noqa: E402


class ConvVAE(torch.nn.Module):
    def __init__(self, image, channels, latent, k=4, s=2, p=1):
        super().__init__()
        c, h, w = image
        enc, dec, shapes = [], [], []
        for o in channels:
            enc += [torch.nn.Conv2d(c, o, k, s, p), torch.nn.ReLU()]
            shapes.append((c, o))
            c, h, w = o, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        self.enc = torch.nn.Sequential(*enc, torch.nn.Flatten())
        self.flat = (c, h, w)
        self.head = torch.nn.Linear(c * h * w, 2 * latent)
        self.dec_in = torch.nn.Linear(latent, c * h * w)
        for i, (ci, o) in enumerate(reversed(shapes)):
            dec.append(torch.nn.ConvTranspose2d(o, ci, k, s, p))
            if i < len(shapes) - 1:
                dec.append(torch.nn.ReLU())
        self.dec = torch.nn.Sequential(*dec)

    def forward(self, x):
        mu, logvar = self.head(self.enc(x)).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        h = F.relu(self.dec_in(z)).view(-1, *self.flat)
        return self.dec(h), mu, logvar


def step(model, opt, x):
    logits, mu, logvar = model(x)
    rec, kl = loss_terms(logits, x, mu, logvar)
    opt.zero_grad()
    ((rec + kl) / x.shape[0]).backward()
    opt.step()


def fashion(split):
    name = "train-images-idx3-ubyte.gz" if split == "train" else "t10k-images-idx3-ubyte.gz"
    x = idx_images(f"{DIR}/{name}").astype(np.float32) / 255.0
    return torch.from_numpy(x).view(-1, 1, 28, 28)


def fidelity(model, opt, threads):
    train, test = fashion("train"), fashion("test")
    for epoch in range(1, A.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(train.shape[0])
        for i in range(0, train.shape[0] - A.batch + 1, A.batch):
            step(model, opt, train[perm[i:i + A.batch]])
        dt = time.perf_counter() - t0
        model.eval()
        rec_s = kl_s = 0.0
        with torch.no_grad():
            for i in range(0, test.shape[0], 1000):
                x = test[i:i + 1000]
                logits, mu, logvar = model(x)
                rec, kl = loss_terms(logits, x, mu, logvar)
                rec_s += rec.item(); kl_s += kl.item()
        n = test.shape[0]
        print(json.dumps({"epoch": epoch, "test_neg_elbo": (rec_s + kl_s) / n, "test_rec": rec_s / n,
                          "test_kl": kl_s / n, "train_samples_per_s": train.shape[0] / dt, "threads": threads}),
              flush=True)


def speed(model, opt, image, threads):
    if image == (1, 28, 28):
        x_all = fashion("train")[:8192]
    else:
        x_all = torch.rand(1024, *image)
    g = torch.Generator().manual_seed(A.seed)
    for i in range(A.warmup + A.steps):
        if i == A.warmup:
            t0 = time.perf_counter()
        step(model, opt, x_all[torch.randint(0, x_all.shape[0], (A.batch,), generator=g)])
    dt = time.perf_counter() - t0
    print(json.dumps({"bench": "pytorch_conv", "image": A.image, "channels": A.channels, "batch": A.batch,
                      "steps": A.steps, "samples_per_s": A.steps * A.batch / dt, "threads": threads}), flush=True)


def main():
    threads = bench_threads.check(A.threads, torch)
    torch.manual_seed(A.seed)
    image = tuple(int(v) for v in A.image.split(","))
    model = ConvVAE(image, [int(c) for c in A.channels.split(",")], A.latent)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    if A.epochs:
        fidelity(model, opt, threads)
    else:
        speed(model, opt, image, threads)


if __name__ == "__main__":
    main()
