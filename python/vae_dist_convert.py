"""Make a vae_dist dataset from the arrays you have.

    python3 python/vae_dist_convert.py OUT.h5 --train X [--train-labels Y] [--test X] [--test-labels Y]

Each X or Y is one of
    file.npy             a NumPy array
    file.npz:name        an array of a .npz archive
    file.h5:/group/name  a dataset of an HDF5 file
    folder/              the PNG images of a folder, in name order (needs Pillow)
Images are (N, H, W), (N, C, H, W) or (N, D): uint8 pixels stay uint8, floats are written as
float32 (they should lie in [0, 1] for the Bernoulli likelihood), integers in [0, 255] become
uint8; where one split is float and the other uint8, the pixels become floats (/ 255).
Labels become uint8 (each must be in [0, 255]). The file carries the crc32 attributes that
vae_dist checks on load (docs/formats.md). Needs NumPy and h5py.
"""
import argparse
import os
import sys
import zlib

import h5py
import numpy as np


def load(spec):
    if os.path.isdir(spec):
        from PIL import Image  # only for folders of pictures

        names = sorted(n for n in os.listdir(spec) if n.lower().endswith(".png"))
        if not names:
            sys.exit(f"{spec}: no .png files")
        return np.stack([np.asarray(Image.open(os.path.join(spec, n)).convert("L")) for n in names])
    path, _, name = spec.partition(":")
    if path.endswith(".npy"):
        return np.load(path)
    if path.endswith(".npz"):
        with np.load(path) as z:
            if name not in z:
                sys.exit(f"{path}: no array '{name}' (it has {', '.join(z.files)})")
            return z[name]
    if path.endswith((".h5", ".hdf5")):
        with h5py.File(path, "r") as f:
            if name not in f:
                sys.exit(f"{path}: no dataset '{name}'")
            return f[name][...]
    sys.exit(f"{spec}: expected file.npy, file.npz:name, file.h5:/path or a folder of PNG images")


def as_images(x, what):
    if x.ndim < 2 or x.ndim > 4:
        sys.exit(f"{what}: shape {x.shape}; expected (N, D), (N, H, W) or (N, C, H, W)")
    if x.ndim == 4 and x.shape[3] <= 4 and x.shape[1] > 4 and x.shape[2] > 4:
        print(f"warning: {what}: shape {x.shape} looks channels-last (NumPy/PIL order); vae_dist reads "
              f"(N, C, H, W): writing x.transpose(0, 3, 1, 2), shape {x.transpose(0, 3, 1, 2).shape}",
              file=sys.stderr)
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            sys.exit(f"{what}: holds NaN or infinite values")
        return x.astype(np.float32)
    if np.issubdtype(x.dtype, np.integer) and x.min() >= 0 and x.max() <= 255:
        return x.astype(np.uint8)
    sys.exit(f"{what}: dtype {x.dtype} with values in [{x.min()}, {x.max()}]; expected uint8 pixels or floats")


def as_labels(y, n, what):
    y = np.asarray(y).reshape(-1)
    if len(y) != n or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() > 255:
        sys.exit(f"{what}: expected {n} integer labels in [0, 255], found {len(y)} of {y.dtype}")
    return y.astype(np.uint8)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--train", required=True)
    p.add_argument("--train-labels")
    p.add_argument("--test")
    p.add_argument("--test-labels")
    a = p.parse_args()
    splits = {}
    for split, xs, ys in (("train", a.train, a.train_labels), ("test", a.test, a.test_labels)):
        if xs is not None:
            x = as_images(load(xs), xs)
            splits[split] = (x, None if ys is None else as_labels(load(ys), len(x), ys))
    # Both splits share one dtype: pixels become floats in [0, 1] where the other split is float.
    if len({x.dtype for x, _ in splits.values()}) > 1:
        splits = {k: (x.astype(np.float32) / 255 if x.dtype == np.uint8 else x, y) for k, (x, y) in splits.items()}
    with h5py.File(a.out, "w", libver=("v108", "v110")) as f:
        f.attrs["format"] = "vae_dist-dataset"
        f.attrs["version"] = 1
        for split, (x, y) in splits.items():
            f[f"{split}/x"] = x
            f[f"{split}/x"].attrs["crc32"] = zlib.crc32(np.ascontiguousarray(x).tobytes())
            if y is not None:
                f[f"{split}/y"] = y
            print(f"{a.out}: /{split}/x {x.shape} {x.dtype}" + (", labels" if y is not None else ""))


if __name__ == "__main__":
    main()
