"""Pin and check the threads of every library a PyTorch benchmark loads.

Debian's PyTorch runs its GEMMs in OpenBLAS, whose thread count is its own
(OPENBLAS_NUM_THREADS, read when the library loads), not torch's: pinning
only torch.set_num_threads leaves "1 thread" PyTorch on every core. So:

    import bench_threads
    bench_threads.pin_env(n)         # before numpy and torch are imported
    import torch
    threads = bench_threads.check(n, torch)   # the libraries' own answers; exits if one differs
"""
import argparse
import ctypes
import os
import sys


def pin_from_argv():
    """pin_env(--threads N) of the command line (default 1), before the script's own parser runs."""
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--threads", type=int, default=1)
    n = ap.parse_known_args()[0].threads
    pin_env(n)
    return n


def pin_env(n):
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def openblas_threads():
    """openblas_get_num_threads() of the libopenblas this process loaded, or None if none is loaded."""
    with open("/proc/self/maps") as f:
        libs = {l.split()[-1] for l in f if "openblas" in l and l.split()[-1].startswith("/")}
    for lib in sorted(libs):
        try:
            return ctypes.CDLL(lib).openblas_get_num_threads()
        except (OSError, AttributeError):
            pass
    return None


def check(n, torch):
    """Set torch's intra-op pool to n and verify it and OpenBLAS; returns what each reports."""
    torch.set_num_threads(n)
    got = {"openblas": openblas_threads(), "torch_intra_op": torch.get_num_threads(),
           "mkldnn": torch.backends.mkldnn.is_available()}
    if got["torch_intra_op"] != n or got["openblas"] not in (None, n):
        sys.exit(f"bench_threads: asked for {n} threads, the libraries report {got}")
    return got
