"""Pin and check the threads of every library a PyTorch benchmark loads.

Debian's PyTorch runs its GEMMs in OpenBLAS, whose thread count is its own
(OPENBLAS_NUM_THREADS, read when the library loads), not torch's: pinning
only torch.set_num_threads leaves "1 thread" PyTorch on every core. So:

    import bench_threads
    bench_threads.pin_env(n)         # before numpy and torch are imported
    import torch
    threads = bench_threads.check(n, torch)   # the libraries' own answers; exits if one differs

The OpenBLAS kernels are pinned too: bench/lib.sh sets OPENBLAS_CORETYPE (or
unsets it) for both sides and exports BENCH_BLAS_KERNELS, the name vae_dist's
OpenBLAS reported; check() exits unless PyTorch's OpenBLAS reports the same.

--blas-threads M (pytorch_bench.py) gives OpenBLAS M threads beside torch's n:
on this 2-core VM PyTorch with 2 OpenBLAS threads runs 5-9x slower than with
one (its OpenMP pool and OpenBLAS's threads contend), so "PyTorch on 2
cores" is measured as 2 intra-op threads with 1 OpenBLAS thread, its best.
"""
import argparse
import ctypes
import os
import sys


def pin_from_argv():
    """pin_env(--threads N, --blas-threads M) of the command line (defaults 1 and N), before the
    script's own parser runs."""
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--blas-threads", type=int, default=0)
    a = ap.parse_known_args()[0]
    pin_env(a.threads, a.blas_threads or a.threads)


def pin_env(n, blas=None):
    """OpenMP (torch's pool) n threads, OpenBLAS blas (default n)."""
    os.environ["OPENBLAS_NUM_THREADS"] = str(blas or n)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def openblas_query(name, restype=ctypes.c_int):
    """openblas_<name>() of the libopenblas this process loaded, or None if none is loaded."""
    with open("/proc/self/maps") as f:
        libs = {l.split()[-1] for l in f if "openblas" in l and l.split()[-1].startswith("/")}
    for lib in sorted(libs):
        try:
            fn = getattr(ctypes.CDLL(lib), "openblas_" + name)
        except (OSError, AttributeError):
            continue
        fn.restype = restype
        got = fn()
        return got.decode() if isinstance(got, bytes) else got
    return None


def openblas_threads():
    return openblas_query("get_num_threads")


def check(n, torch, blas=None):
    """Set torch's intra-op pool to n and verify it and OpenBLAS (blas, default n); returns what each reports."""
    blas = blas or n
    torch.set_num_threads(n)
    got = {"openblas": openblas_threads(), "torch_intra_op": torch.get_num_threads(),
           "mkldnn": torch.backends.mkldnn.is_available(),
           "openblas_kernels": openblas_query("get_corename", ctypes.c_char_p)}
    if got["torch_intra_op"] != n or got["openblas"] not in (None, blas):
        sys.exit(f"bench_threads: asked for {n} threads ({blas} in OpenBLAS), the libraries report {got}")
    want = os.environ.get("BENCH_BLAS_KERNELS")
    if want and got["openblas_kernels"] not in (None, want):
        sys.exit(f"bench_threads: vae_dist ran OpenBLAS {want} kernels, PyTorch's OpenBLAS reports {got}")
    return got
