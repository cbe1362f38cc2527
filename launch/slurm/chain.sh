#!/usr/bin/env bash
# Submit a chain of N training jobs, each starting after the previous one
# ends (afterany), for trainings longer than a partition's time limit. Every
# job resumes from the newest checkpoint; a job that finds training done exits 0.
#   launch/slurm/chain.sh N [sbatch options ...]     (VAE_CONFIG etc. as for train.sbatch)
set -euo pipefail
n=${1:?usage: chain.sh N [sbatch options]}; shift
here=$(cd "$(dirname "$0")" && pwd)
: "${VAE_CONFIG:?set VAE_CONFIG}"
jid=$(sbatch --parsable "$@" "$here/train.sbatch")
echo "$jid"
for _ in $(seq 2 "$n"); do
    jid=$(sbatch --parsable --dependency=afterany:"$jid" "$@" "$here/train.sbatch")
    echo "$jid"
done
