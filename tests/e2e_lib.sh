# Helpers for the end-to-end scripts: the real binary under the real mpirun.
# Sourced with $1 = path of vae_dist. Every check prints "ok - ..." or
# "not ok - ..." and the script ends with "N passed, N failed".
set -u
VAE=$(readlink -f "$1")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 VAE_PROGRESS=0
# Keep Open MPI's own chatter about aborts out of the captured error text.
export OMPI_MCA_orte_abort_print_stack=0
WORK=$(mktemp -d /tmp/vae_e2e_XXXXXX)
trap 'rm -rf "$WORK"' EXIT
PASSED=0
FAILED=0

ok() { echo "ok - $*"; PASSED=$((PASSED + 1)); }
not_ok() { echo "not ok - $*"; FAILED=$((FAILED + 1)); }
check() { # check DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
finish() {
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}

# mpirun NP ARGS... with a hard time limit: a hang fails the test, not CI.
run_np() {
    local np=$1; shift
    timeout -k 5 120 mpirun -np "$np" "$VAE" "$@"
}

# The CRC-32 of the parameters in a checkpoint, from `vae_dist info`.
params_crc() {
    timeout 60 mpirun -np 1 "$VAE" info --checkpoint "$1" 2>/dev/null |
        sed -n 's/.*"params_crc32": "\([0-9a-f]*\)".*/\1/p'
}

# expect_error NAME EXPECTED_TEXT COMMAND...: non-zero exit (not a timeout,
# not a crash) and EXPECTED_TEXT in the output.
expect_error() {
    local name=$1 text=$2; shift 2
    local out rc
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" -eq 0 ]; then not_ok "$name: exited 0"; echo "$out" | tail -5; return; fi
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then not_ok "$name: hung (timeout)"; return; fi
    if echo "$out" | grep -qiE "segmentation|core dumped|AddressSanitizer|runtime error"; then
        not_ok "$name: crashed"; echo "$out" | tail -20; return
    fi
    if ! echo "$out" | grep -qF -- "$text"; then
        not_ok "$name: message lacks '$text'"; echo "$out" | tail -8; return
    fi
    ok "$name (exit $rc): $(echo "$out" | grep -F -- "$text" | head -1)"
}
