#!/usr/bin/env bash
# The commands on a trained model, through the real binary under mpirun:
# eval (the same JSON numbers on 1, 2 and 4 ranks), sample and recon (PNG),
# encode (HDF5 latents), score (HDF5 scores; AUROC on synthetic tabular data
# with injected anomalies), and their errors; then the same for a conv model
# on 3-channel pictures.
. "$(dirname "$0")/e2e_lib.sh"
# OpenBLAS's kernels: a name in OPENBLAS_CORETYPE is the user's and stays;
# without one, a CPU with AVX-512 runs AVX-512 kernels, whatever OpenBLAS's
# own choice for its model (OpenBLAS 0.3.21 picks SSE3 ones on newer CPUs).
k=$(OPENBLAS_CORETYPE=Prescott "$VAE" --version)
check "OPENBLAS_CORETYPE=Prescott is kept ($k)" grep -q "OpenBLAS Prescott kernels" <<<"$k"
k=$(env -u OPENBLAS_CORETYPE "$VAE" --version)
if grep -qw avx512bw /proc/cpuinfo && grep -qw avx512vl /proc/cpuinfo; then
    check "AVX-512 kernels without OPENBLAS_CORETYPE ($k)" grep -qE "OpenBLAS (SkylakeX|Cooperlake|SapphireRapids) kernels" <<<"$k"
fi
"$VAE" synth --out "$WORK/img.h5" --n-train 1024 --n-test 100 --dim 64 >/dev/null
run_np 2 train --resume none --set data.path="$WORK/img.h5" --set run.dir="$WORK/img" --set model.hidden=32 \
    --set model.latent=4 --set train.batch_size=32 --set train.epochs=3 >/dev/null 2>&1
C="$WORK/img/ckpt/step-00000096.h5"
check "trained a model on synthetic 8x8 images" test -e "$C"
nums() { grep '"event": "eval"' | sed 's/.*"n": \([0-9]*\).*"neg_elbo": \([0-9.-]*\).*"neg_iwae": \([0-9.-]*\).*/\1 \2 \3/'; }
e1=$(run_np 1 eval --checkpoint "$C" --iw-samples 50 2>/dev/null | nums)
e2=$(run_np 2 eval --checkpoint "$C" --iw-samples 50 2>/dev/null | nums)
e4=$(run_np 4 eval --checkpoint "$C" --iw-samples 50 2>/dev/null | nums)
check "eval on 1, 2, 4 ranks: identical n, -ELBO, -IWAE ($e1)" test -n "$e1" -a "$e1" = "$e2" -a "$e1" = "$e4"
check "eval appended an eval event to metrics.jsonl" grep -q '"event": "eval"' "$WORK/img/metrics.jsonl"
run_np 2 sample --checkpoint "$C" --n 32 --out "$WORK/s.png" >/dev/null 2>&1
check "sample wrote a PNG" bash -c "head -c 4 '$WORK/s.png' | od -c | grep -q 'P   N   G'"
run_np 2 recon --checkpoint "$C" --n 20 --out "$WORK/r.png" >/dev/null 2>&1
check "recon wrote a PNG" bash -c "head -c 4 '$WORK/r.png' | od -c | grep -q 'P   N   G'"
run_np 2 encode --checkpoint "$C" --out "$WORK/lat.h5" >/dev/null 2>&1
check "encode wrote mu (100, 4), logvar and labels" \
    bash -c "h5dump -H '$WORK/lat.h5' | tr -d '\n' | grep -q 'DATASET \"mu\" {.*( 100, 4 )'"
expect_error "eval without --checkpoint" "--checkpoint PATH is required" run_np 1 eval
expect_error "eval of a missing checkpoint" "cannot read the file" run_np 2 eval --checkpoint "$WORK/none.h5"
expect_error "eval on data of another dimension" "the model in" \
    bash -c "'$VAE' synth --out '$WORK/d9.h5' --dim 9 --n-train 64 --n-test 8 >/dev/null &&
             timeout 60 mpirun -np 2 '$VAE' eval --checkpoint '$C' --data '$WORK/d9.h5'"

# Anomaly scores on tabular data: 10% of the test rows pushed off the manifold.
"$VAE" synth --out "$WORK/tab.h5" --tabular --dim 16 --n-train 4096 --n-test 1000 --anomalies 0.1 >/dev/null
run_np 2 train --resume none --set data.path="$WORK/tab.h5" --set run.dir="$WORK/tab" --set model.hidden=32 \
    --set model.latent=2 --set model.likelihood=gaussian_learned --set train.batch_size=64 \
    --set train.epochs=20 --set optim.lr=0.003 >/dev/null 2>&1
T=$(ls "$WORK"/tab/ckpt/step-*.h5 | tail -1)
out=$(run_np 2 score --checkpoint "$T" --iw-samples 100 --out "$WORK/scores.h5" 2>&1)
auroc=$(echo "$out" | sed -n 's/.*"auroc_neg_iwae": \([0-9.]*\).*/\1/p')
echo "# $(echo "$out" | grep '"event": "score"')"
check "score: AUROC of -IWAE on injected anomalies >= 0.9 (found $auroc)" test "$(echo "${auroc:-0} >= 0.9" | bc)" -eq 1
check "score wrote neg_elbo, neg_iwae and y (1000)" \
    bash -c "h5dump -H '$WORK/scores.h5' | tr -d '\n' | grep -q 'DATASET \"neg_iwae\" {.*( 1000 )'"
# Without --iw-samples (K = 0) on labelled data: the -ELBO alone, with its AUROC.
out=$(run_np 2 score --checkpoint "$T" --out "$WORK/scores0.h5" 2>&1); rc=$?
check "score without --iw-samples: exit 0 (was a crash), AUROC of -ELBO reported (exit $rc)" \
    bash -c "test $rc -eq 0 && echo '$(echo "$out" | grep '"event": "score"')' | grep -q '\"auroc_neg_elbo\": 0\.'"
expect_error "sample on a model of non-image data" "draws pictures only for image data" \
    run_np 1 sample --checkpoint "$T" --n 4 --out "$WORK/x.png"

# Output that a script parses: stdout of eval, score and info is exactly one
# JSON object (null, not nan); notes such as "loaded checkpoint" go to stderr.
check "eval: stdout is one JSON object (neg_iwae null without --iw-samples)" \
    bash -c "timeout 60 mpirun -np 2 '$VAE' eval --checkpoint '$C' 2>/dev/null | python3 -c 'import json,sys; d = json.loads(sys.stdin.read()); sys.exit(0 if d[\"neg_iwae\"] is None else 1)'"
check "score: stdout is one JSON object" \
    bash -c "timeout 60 mpirun -np 2 '$VAE' score --checkpoint '$C' --out '$WORK/s2.h5' 2>/dev/null | python3 -c 'import json,sys; json.loads(sys.stdin.read())'"
check "info: stdout is one JSON object holding the stored config" \
    bash -c "timeout 60 mpirun -np 1 '$VAE' info --checkpoint '$C' 2>/dev/null | python3 -c 'import json,sys; d = json.loads(sys.stdin.read()); sys.exit(0 if \"[model]\" in d[\"config\"] else 1)'"
check "metrics.jsonl: every line is JSON with time and run; eval names its split and checkpoint" \
    python3 -c "
import json, sys
lines = [json.loads(l) for l in open('$WORK/img/metrics.jsonl')]
ok = all('time' in d and 'run' in d for d in lines)
ok = ok and any(d['event'] == 'start' for d in lines)
ev = [d for d in lines if d['event'] == 'eval']
sys.exit(0 if ok and ev and ev[-1]['split'] == 'test' and ev[-1]['checkpoint'].endswith('.h5') else 1)"

# Errors once per job, with the documented exit codes.
out=$(timeout 60 mpirun --oversubscribe -np 3 "$VAE" train --set data.path="$WORK/img.h5" --set run.dir="$WORK/x3" 2>&1)
check "a config error on 3 ranks is printed once ($(echo "$out" | grep -c 'error:') times)" \
    test "$(echo "$out" | grep -c 'error:')" -eq 1
out=$(timeout 60 mpirun -np 2 "$VAE" eval --checkpoint "$C" --bogus 2>&1); rc=$?
check "an unknown option on 2 ranks: printed once, exit 2 (exit $rc)" \
    bash -c "test $rc -eq 2 && test \$(echo \"\$1\" | grep -c 'error:') -eq 1" _ "$out"
check "eval without --checkpoint exits 2 (usage)" bash -c "timeout 60 mpirun -np 1 '$VAE' eval >/dev/null 2>&1; test \$? -eq 2"
check "sample --out x.jpg is refused (exit 2): it writes PNG" \
    bash -c "'$VAE' sample --checkpoint '$C' --n 4 --out '$WORK/x.jpg' >/dev/null 2>&1; test \$? -eq 2 && ! test -e '$WORK/x.jpg'"
run_np 1 sample --checkpoint "$C" --n 4 --out "$WORK/s1.png" --scale 1 >/dev/null 2>&1
run_np 1 sample --checkpoint "$C" --n 4 --out "$WORK/s3.png" --scale 3 >/dev/null 2>&1
w1=$(od -An -tu1 -j16 -N4 "$WORK/s1.png" | awk '{print $1*16777216+$2*65536+$3*256+$4}')
w3=$(od -An -tu1 -j16 -N4 "$WORK/s3.png" | awk '{print $1*16777216+$2*65536+$3*256+$4}')
check "sample --scale 3: 4 cells of 8x8 pixels drawn 24x24 ($w1 -> $w3 pixels wide)" \
    test "$w1" -eq 37 -a "$w3" -eq 101
check "-V prints the version" bash -c "'$VAE' -V | grep -q '^vae_dist [0-9]'"
check "config with an option is refused (exit 2)" bash -c "'$VAE' config --bogus >/dev/null 2>&1; test \$? -eq 2"
check "synth --n-train 1.5 is refused (exit 2)" \
    bash -c "'$VAE' synth --out '$WORK/q.h5' --n-train 1.5 >/dev/null 2>&1; test \$? -eq 2"
timeout 60 mpirun -np 2 "$VAE" synth --out "$WORK/par.h5" --n-train 64 --n-test 8 --dim 4 >"$WORK/par.log" 2>&1
check "synth under mpirun -np 2: one process writes, the other does nothing" \
    bash -c "test \$(grep -c '^wrote' '$WORK/par.log') -eq 1 && grep -q 'runs on one process' '$WORK/par.log'"
check "train --resume Auto means auto" \
    bash -c "timeout 60 mpirun -np 2 '$VAE' train --set data.path='$WORK/img.h5' --set run.dir='$WORK/img' --set model.hidden=32 --set model.latent=4 --set train.batch_size=32 --set train.epochs=3 --resume Auto 2>&1 | grep -q 'holds a finished run'"

# A conv model on 3x16x16 pictures: train on 2 ranks, resume on 1, and every tool.
"$VAE" synth --out "$WORK/rgb.h5" --image 3,16,16 --n-train 256 --n-test 64 >/dev/null
CONV=(--set data.path="$WORK/rgb.h5" --set run.dir="$WORK/conv" --set model.arch=conv --set model.channels=4,8
      --set model.hidden=none --set model.latent=4 --set train.batch_size=32 --set ckpt.every_steps=8)
run_np 2 train --resume none "${CONV[@]}" --set train.epochs=2 >/dev/null 2>&1
run_np 1 train --resume auto "${CONV[@]}" --set train.epochs=3 >"$WORK/conv.log" 2>&1
K="$WORK/conv/ckpt/step-00000024.h5"
check "conv model: trained on 2 ranks to step 16, resumed on 1 rank to step 24" \
    bash -c "test -e '$K' && grep -q 'loaded checkpoint .*step-00000016' '$WORK/conv.log'"
check "conv model: the layout stores PyTorch shapes (ConvTranspose2d(8, 4, 4) is 8 x 4 x 4 x 4)" \
    bash -c "h5dump -d /model/layout '$K' | tr -d ' \n' | grep -q '\"dec.conv0.w\".*\[8,4,4,4\]'"
k1=$(run_np 1 eval --checkpoint "$K" --iw-samples 10 2>/dev/null | nums)
k2=$(run_np 2 eval --checkpoint "$K" --iw-samples 10 2>/dev/null | nums)
check "conv model: eval on 1 and 2 ranks identical ($k1)" test -n "$k1" -a "$k1" = "$k2"
run_np 2 recon --checkpoint "$K" --n 8 --out "$WORK/cr.png" >/dev/null 2>&1
check "conv model: recon of 3-channel pictures is an RGB PNG (colour type 2)" \
    test "$(od -An -tu1 -j25 -N1 "$WORK/cr.png" 2>/dev/null | tr -d ' ')" = 2
run_np 2 sample --checkpoint "$K" --n 8 --out "$WORK/cs.png" >/dev/null 2>&1
check "conv model: sample wrote a PNG" test -s "$WORK/cs.png"
run_np 2 encode --checkpoint "$K" --out "$WORK/clat.h5" >/dev/null 2>&1
check "conv model: encode wrote mu (64, 4)" \
    bash -c "h5dump -H '$WORK/clat.h5' | tr -d '\n' | grep -q 'DATASET \"mu\" {.*( 64, 4 )'"
check "conv model: info reports image_channels 3" \
    bash -c "'$VAE' info --checkpoint '$K' 2>/dev/null | grep -q '\"image_channels\": 3,'"
expect_error "conv model on tabular data (no image shape)" "model.arch = conv needs images" \
    run_np 2 train --resume none --set data.path="$WORK/tab.h5" --set run.dir="$WORK/ct" --set model.arch=conv \
    --set model.likelihood=gaussian
expect_error "conv stage that the stride cannot invert names the stage" "conv stage 1 (4x8x8" \
    run_np 2 train --resume none "${CONV[@]}" --set run.dir="$WORK/c7" --set model.channels=4,8,8 \
    --set model.kernel=4,3,4 --set model.stride=2,2,2 --set model.padding=1,0,1
expect_error "kernel list neither one value nor one per stage" "expected one value or one per stage (2), found 3" \
    run_np 1 train --resume none "${CONV[@]}" --set run.dir="$WORK/c8" --set model.kernel=4,4,4
# --checkpoint takes a run directory (its newest committed checkpoint) and the
# latest pointer (issue 34, trap 6), not only a file.
newest=$(ls "$WORK"/tab/ckpt/step-*.h5 | tail -1)
check "info --checkpoint RUN_DIR: the newest committed checkpoint" \
    bash -c "timeout 60 mpirun -np 1 '$VAE' info --checkpoint '$WORK/tab' 2>/dev/null | grep -q '\"checkpoint\": \"$newest\"'"
check "eval --checkpoint RUN_DIR/ckpt/latest: the file it names" \
    bash -c "timeout 60 mpirun -np 2 '$VAE' eval --checkpoint '$WORK/tab/ckpt/latest' 2>/dev/null |
             grep -q '\"checkpoint\": \"$WORK/tab/ckpt/$(cat "$WORK/tab/ckpt/latest")\"'"
mkdir -p "$WORK/nockpt"
expect_error "--checkpoint a directory without checkpoints: said so" "a directory without committed checkpoints" \
    run_np 1 info --checkpoint "$WORK/nockpt"
finish
