#!/usr/bin/env bash
# Lines of every C function under src/ (signature to closing brace), longest
# first: the STYLE.md check that each reads on one screen.
#   scripts/function-lengths.sh [N=10]     the N longest
set -euo pipefail
cd "$(dirname "$0")/.."
# clang-format puts a function's braces at column 0; a signature starts at
# column 0 with an identifier and carries the parameter list's '('.
git ls-files 'src/*.c' | xargs awk '
    FNR == 1 { sig = 0 }
    /^[A-Za-z_].*\(/ && !/;[[:space:]]*$/ { sig = FNR; name = $0; sub(/\(.*/, "", name); sub(/.*[ *]/, "", name) }
    /^\{/ && sig { start = sig }
    /^\}/ && start { printf "%5d %s:%d %s\n", FNR - start + 1, FILENAME, start, name; start = 0; sig = 0 }
' | sort -rn | head -n "${1:-10}"
