"""The PyTorch round trip (run by tests/e2e_torch.sh): a dataset written the
natural way with h5py, trained by vae_dist, loaded with python/vae_dist_torch,
and its encode and recon outputs compared with vae_dist's own.

    python3 tests/torch_interop.py VAE_BINARY WORK_DIR
"""
import os
import struct
import subprocess
import sys
import zlib

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
import vae_dist_torch  # noqa: E402

vae, work = sys.argv[1], sys.argv[2]
failed = 0


def check(what, ok):
    global failed
    print(("ok - " if ok else "not ok - ") + what)
    failed += not ok


def run(*args):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    r = subprocess.run(["timeout", "120", "mpirun", "-np", "2", vae, *args], env=env, capture_output=True,
                       text=True)
    if r.returncode:
        print(r.stdout[-2000:], r.stderr[-2000:])
    return r


def png_gray(path):
    """An 8-bit greyscale PNG as a (H, W) array: chunks, inflate, undo the row filters."""
    data = open(path, "rb").read()
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, out, prev = zlib.decompress(idat), np.zeros((h, w), np.int32), np.zeros(w, np.int32)
    for r in range(h):
        f, line = raw[r * (w + 1)], np.frombuffer(raw[r * (w + 1) + 1:(r + 1) * (w + 1)], np.uint8).astype(np.int32)
        cur = np.zeros(w, np.int32)
        for c in range(w):
            a, b, cc = (cur[c - 1] if c else 0), prev[c], (prev[c - 1] if c else 0)
            p = {0: 0, 1: a, 2: b, 3: (a + b) // 2}.get(f)
            if f == 4:
                pa, pb, pc = abs(b - cc), abs(a - cc), abs(a + b - 2 * cc)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
            cur[c] = (line[c] + p) & 255
        out[r], prev = cur, cur
    return out


# 1. A dataset as an h5py user writes it: str attribute, (N, 12, 12) uint8, int64 labels.
rng = np.random.default_rng(0)
n_train, n_test, side = 512, 64, 12
proto = rng.integers(0, 256, (4, side, side))
def images(n):
    k = rng.integers(0, 4, n)
    return np.clip(proto[k] + rng.normal(0, 20, (n, side, side)), 0, 255).astype(np.uint8), k.astype(np.int64)
data = os.path.join(work, "h5py.h5")
with h5py.File(data, "w") as f:
    f.attrs["format"] = "vae_dist-dataset"
    for split, n in (("train", n_train), ("test", n_test)):
        x, y = images(n)
        f[f"{split}/x"] = x
        f[f"{split}/y"] = y
run_dir = os.path.join(work, "run")
r = run("train", "--resume", "none", "--set", f"data.path={data}", "--set", f"run.dir={run_dir}",
        "--set", "model.hidden=32,16", "--set", "model.latent=3", "--set", "train.batch_size=32",
        "--set", "train.epochs=2")
check("vae_dist trains on the h5py-written dataset (exit %d)" % r.returncode, r.returncode == 0)
ckpt = os.path.join(run_dir, "ckpt", "step-%08d.h5" % (2 * n_train // 32))

# 2. The checkpoint in PyTorch against vae_dist encode.
model = vae_dist_torch.load(ckpt)
with h5py.File(data, "r") as f:
    x_test = torch.from_numpy(f["test/x"][...].reshape(n_test, -1).astype(np.float32) / 255.0)
lat = os.path.join(work, "lat.h5")
r = run("encode", "--checkpoint", ckpt, "--out", lat)
with h5py.File(lat, "r") as f:
    mu_c, logvar_c = f["mu"][...], f["logvar"][...]
with torch.no_grad():
    mu_t, logvar_t = model.encode(x_test)
err = max(np.abs(mu_t.numpy() - mu_c).max(), np.abs(logvar_t.numpy() - logvar_c).max())
check(f"encode: PyTorch mu and log sigma^2 equal vae_dist's to {err:.2e} (<= 1e-5)", err <= 1e-5)

# 3. recon: vae_dist's PNG grid against decode(mu) in PyTorch, to one grey level.
png = os.path.join(work, "recon.png")
r = run("recon", "--checkpoint", ckpt, "--n", "8", "--out", png)
grid = png_gray(png)
with torch.no_grad():
    x_hat = model.reconstruct(x_test[:8]).numpy().reshape(8, side, side)
worst = 0
for i in range(8):
    # recon draws a row of inputs (8 here) above the row of their reconstructions.
    r0, c0 = 1 + (side + 1), 1 + i * (side + 1)
    got = grid[r0:r0 + side, c0:c0 + side]
    worst = max(worst, np.abs(got - np.round(x_hat[i] * 255)).max())
check(f"recon: vae_dist's reconstructions equal PyTorch's decode(mu) to {worst} grey levels (<= 1)", worst <= 1)
# 4. python/vae_dist_convert.py: from a .npz (float64 images, int64 labels) and from an HDF5 path.
npz = os.path.join(work, "arrays.npz")
x, y = images(256)
np.savez(npz, x=x.astype(np.float64) / 255.0, y=y)
conv = os.path.join(os.path.dirname(__file__), "..", "python", "vae_dist_convert.py")
out = os.path.join(work, "converted.h5")
c = subprocess.run([sys.executable, conv, out, "--train", npz + ":x", "--train-labels", npz + ":y",
                    "--test", data + ":/test/x", "--test-labels", data + ":/test/y"], capture_output=True, text=True)
check("vae_dist_convert.py from .npz and .h5 paths (exit %d)" % c.returncode, c.returncode == 0)
r = run("train", "--resume", "none", "--set", f"data.path={out}", "--set", f"run.dir={work}/converted",
        "--set", "model.hidden=16", "--set", "model.latent=2", "--set", "train.batch_size=32", "--set",
        "train.max_steps=4")
# No warning about the file (the one about OpenBLAS's kernels depends on the machine, not on the data).
warnings = [w for w in r.stderr.splitlines() if "warning" in w and "OpenBLAS runs its" not in w]
check("vae_dist trains on the converted file, its checksums verified (exit %d, warnings %s)"
      % (r.returncode, warnings or "none"), r.returncode == 0 and not warnings)

# 5. A conv model (12 -> 6 -> 3, then mirrored) trained on 3-channel (N, C, H, W) data: PyTorch's
#    Conv2d/ConvTranspose2d with vae_dist's weights against vae_dist encode and recon.
rgb = os.path.join(work, "rgb.h5")
xr = np.clip(rng.normal(128, 60, (256 + 32, 3, side, side)), 0, 255).astype(np.uint8)
with h5py.File(rgb, "w") as f:
    f.attrs["format"] = "vae_dist-dataset"
    f["train/x"], f["test/x"] = xr[:256], xr[256:]
r = run("train", "--resume", "none", "--set", f"data.path={rgb}", "--set", f"run.dir={work}/cnn",
        "--set", "model.arch=conv", "--set", "model.channels=4,6", "--set", "model.hidden=8",
        "--set", "model.latent=3", "--set", "train.batch_size=32", "--set", "train.epochs=2")
check("vae_dist trains a conv model on (N, 3, 12, 12) data (exit %d)" % r.returncode, r.returncode == 0)
ckpt = os.path.join(work, "cnn", "ckpt", "step-%08d.h5" % 16)
model = vae_dist_torch.load(ckpt)
check("the conv checkpoint loads as Conv2d/ConvTranspose2d layers",
      isinstance(model.layers["enc_conv0"], torch.nn.Conv2d) and
      isinstance(model.layers["dec_conv1"], torch.nn.ConvTranspose2d))
x_test = torch.from_numpy(xr[256:].reshape(32, -1).astype(np.float32) / 255.0)
r = run("encode", "--checkpoint", ckpt, "--out", lat)
with h5py.File(lat, "r") as f:
    mu_c = f["mu"][...]
with torch.no_grad():
    mu_t, _ = model.encode(x_test)
err = np.abs(mu_t.numpy() - mu_c).max()
check(f"conv encode: PyTorch mu equals vae_dist's to {err:.2e} (<= 1e-5)", err <= 1e-5)
sys.exit(1 if failed else 0)
