#!/usr/bin/env bash
# The walls of DESIGN.md, checked on what the build produced: each room is
# its own static library (src/CMakeLists.txt), and the symbols a room's
# objects leave undefined say which foreign library it calls. Only comm
# calls MPI (data names MPI_INFO_NULL, which parallel HDF5's file access
# needs), only data calls HDF5 and zlib, only model BLAS, only picture
# libpng.
#   tests/walls.sh BUILD_DIR
set -euo pipefail
lib=${1:?usage: walls.sh BUILD_DIR}/src
fail=0
# room:pattern of foreign symbols it may use
allowed=(comm:'^(P?MPI_|ompi_)' data:'^(H5|gz|crc32|ompi_mpi_info_null$)' model:'^(cblas_|openblas_)'
         picture:'^png_')
foreign='^(P?MPI_|ompi_|H5|gz|crc32|cblas_|openblas_|png_)'
for a in "$lib"/libvae_*.a; do
    room=$(basename "$a" .a); room=${room#libvae_}
    ok='^$'
    for e in "${allowed[@]}"; do [ "${e%%:*}" = "$room" ] && ok=${e#*:}; done
    bad=$(nm -u "$a" | awk '{ print $2 }' | grep -E "$foreign" | grep -Ev "$ok" | sort -u | tr '\n' ' ' || true)
    if [ -n "$bad" ]; then
        echo "not ok - src/$room calls past its wall: $bad"
        fail=1
    else
        echo "ok - src/$room: $(nm -u "$a" | awk '{ print $2 }' | grep -Ec "$foreign" || true) foreign symbols, all its own to use"
    fi
done
n=$(ls "$lib"/libvae_*.a | wc -l)
[ "$n" -ge 8 ] || { echo "not ok - expected the 8 room libraries, found $n"; fail=1; }
[ $fail -eq 0 ] && echo "$n passed, 0 failed" || echo "walls: failed"
exit $fail
