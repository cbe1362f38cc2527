"""Hostile HDF5 files for tests/e2e_hostile.sh, made with h5py (Debian's python3-h5py).

    hostile.py format-array  SRC OUT   'format' stored as an array of 41 strings
    hostile.py config-array  SRC OUT   'config' stored as 2,000 copies of itself
    hostile.py neg-moment    CKPT      Adam's second moment /optim/state1 gets -1.0 at
                                       element 3, its crc32 recomputed (passes the checksum)
    hostile.py optim-t       CKPT T    optim_t set to T (nothing else)
    hostile.py soft-link     CKPT      /optim/state0 replaced by a soft link to /model/params
"""
import shutil
import sys
import zlib

import h5py
import numpy as np


def main(cmd, *args):
    if cmd == "format-array":
        shutil.copy(args[0], args[1])
        with h5py.File(args[1], "a") as f:
            fmt = f.attrs["format"]
            fmt = fmt.encode() if isinstance(fmt, str) else bytes(fmt)
            del f.attrs["format"]
            f.attrs["format"] = np.array([fmt] + [b"B" * 60] * 40)
    elif cmd == "config-array":
        shutil.copy(args[0], args[1])
        with h5py.File(args[1], "a") as f:
            text = f.attrs["config"]
            text = text.encode() if isinstance(text, str) else bytes(text)
            del f.attrs["config"]
            f.attrs["config"] = np.array([text] * 2000)
    elif cmd == "neg-moment":
        with h5py.File(args[0], "a") as f:
            d = f["/optim/state1"]
            v = d[...].astype("<f4")
            v[3] = -1.0
            d[...] = v
            d.attrs["crc32"] = np.int64(zlib.crc32(v.tobytes()))
    elif cmd == "optim-t":
        with h5py.File(args[0], "a") as f:
            f.attrs["optim_t"] = np.int64(int(args[1]))
    elif cmd == "soft-link":
        with h5py.File(args[0], "a") as f:
            del f["/optim/state0"]
            f["/optim/state0"] = h5py.SoftLink("/model/params")
    else:
        sys.exit(f"hostile.py: unknown command {cmd}")


if __name__ == "__main__":
    main(*sys.argv[1:])
