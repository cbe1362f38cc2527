#!/usr/bin/env bash
# Bad input through the real CLI: each case must end with a clear one-line
# error naming the cause and a non-zero exit, never a crash or a hang.
. "$(dirname "$0")/e2e_lib.sh"

# A small good dataset and IDX files to damage.
"$VAE" synth --out "$WORK/good.h5" --n-train 256 --n-test 32 --dim 16 >/dev/null
printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x02abcdefgh' >"$WORK/ok.idx"
head -c 18 "$WORK/ok.idx" >"$WORK/trunc.idx"
gzip -c "$WORK/ok.idx" | head -c 20 >"$WORK/trunc.idx.gz"
echo "not an idx file" >"$WORK/junk.idx"
printf '\x00\x00\x08\x01\x00\x00\x00\x03abc' >"$WORK/labels3.idx"
head -c 1000 "$WORK/good.h5" >"$WORK/trunc.h5"
echo "hello" >"$WORK/text.h5"

expect_error "prep: missing IDX file" "cannot open IDX file" \
    "$VAE" prep --train-images "$WORK/none.gz" --out "$WORK/o.h5"
expect_error "prep: corrupt IDX (wrong magic)" "expected magic 0x00000803" \
    "$VAE" prep --train-images "$WORK/junk.idx" --out "$WORK/o.h5"
expect_error "prep: truncated IDX" "truncated" \
    "$VAE" prep --train-images "$WORK/trunc.idx" --out "$WORK/o.h5"
expect_error "prep: truncated gzip IDX" "truncated" \
    "$VAE" prep --train-images "$WORK/trunc.idx.gz" --out "$WORK/o.h5"
expect_error "prep: label count differs from image count" "3 labels for 2 images" \
    "$VAE" prep --train-images "$WORK/ok.idx" --train-labels "$WORK/labels3.idx" --out "$WORK/o.h5"
expect_error "prep: unwritable output (a file where a directory should be)" \
    "cannot create the dataset file: Not a directory" \
    "$VAE" prep --train-images "$WORK/ok.idx" --out "$WORK/ok.idx/o.h5"
check "prep: makes the directories of --out" \
    bash -c "'$VAE' prep --train-images '$WORK/ok.idx' --out '$WORK/new/dir/o.h5' >/dev/null 2>&1 && test -s '$WORK/new/dir/o.h5'"

T=(--resume none --set run.dir="$WORK/run" --set model.hidden=8 --set model.latent=2 --set train.batch_size=32)
expect_error "train: missing HDF5 file" "cannot read the file" \
    run_np 2 train "${T[@]}" --set data.path="$WORK/none.h5"
expect_error "train: truncated HDF5 file" "not a readable HDF5 file" \
    run_np 2 train "${T[@]}" --set data.path="$WORK/trunc.h5"
expect_error "train: not an HDF5 file" "not a readable HDF5 file" \
    run_np 2 train "${T[@]}" --set data.path="$WORK/text.h5"
expect_error "train: unknown config key" "unknown key 'lrate' in [optim]" \
    run_np 1 train "${T[@]}" --set optim.lrate=0.1
printf '[optim]\nlr = -0.001\n' >"$WORK/neg.ini"
expect_error "train: negative learning rate in a config file" "neg.ini:2: [optim] lr: expected a number in [0" \
    run_np 2 train --config "$WORK/neg.ini" "${T[@]}" --set data.path="$WORK/good.h5"
expect_error "train: batch not divisible by ranks" "not divisible by the 3 ranks" \
    run_np 3 train "${T[@]}" --set data.path="$WORK/good.h5"
# Another model: refused by the config comparison, before any tensor is read;
# with --resume-override, by the layout check, which names the tensor.
expect_error "train: checkpoint of another model shape" "[model] hidden: checkpoint 8, now 9" \
    bash -c "timeout 120 mpirun -np 2 '$VAE' train ${T[*]} --set data.path='$WORK/good.h5' --set train.max_steps=3 >/dev/null &&
             timeout 120 mpirun -np 2 '$VAE' train ${T[*]} --set data.path='$WORK/good.h5' --set model.hidden=9 \
                 --resume '$WORK/run/ckpt/step-00000003.h5'"
expect_error "train: checkpoint of another model shape, --resume-override" "in the configured model" \
    run_np 2 train "${T[@]}" --set data.path="$WORK/good.h5" --set model.hidden=9 --resume-override \
    --resume "$WORK/run/ckpt/step-00000003.h5"
expect_error "train: a dataset file given as checkpoint" "attribute 'format' is 'vae_dist-dataset'" \
    run_np 2 train "${T[@]/none/$WORK/good.h5}" --set data.path="$WORK/good.h5"
expect_error "unknown command" "unknown command 'trian'" "$VAE" trian
check "--help exits 0" "$VAE" --help
check "--version prints the version" bash -c "'$VAE' --version | grep -q '^vae_dist [0-9]'"
# Float data outside [0, 1] under the Bernoulli likelihood (issue 34, trap 4):
# refused before training with the scaling hint, not ten non-finite steps and
# a hint about the learning rate.
"$VAE" synth --out "$WORK/tab.h5" --tabular --dim 16 --n-train 256 --n-test 32 >/dev/null
expect_error "bernoulli on float data in [-1.5, 1.5]: refused before training" \
    "but model.likelihood = bernoulli models values in [0, 1]: training would diverge (HINT: scale the data" \
    run_np 2 train "${T[@]}" --set data.path="$WORK/tab.h5"
for p in python3 /usr/bin/python3; do
    if "$p" -c "import h5py, numpy" 2>/dev/null; then
        "$p" -c "
import h5py, numpy as np, sys
with h5py.File(sys.argv[1], 'w') as f:
    f.attrs['format'] = 'vae_dist-dataset'
    f['train/x'] = np.random.default_rng(1).integers(0, 256, (256, 16)).astype(np.float32)
" "$WORK/pix255.h5"
        out=$(run_np 2 train "${T[@]}" --set data.path="$WORK/pix255.h5" 2>&1)
        check "float pixels in 0..255: refused, the hint says divide by 255, no non-finite steps" \
            bash -c "echo \"\$1\" | grep -q 'divide them by 255' && ! echo \"\$1\" | grep -q 'non-finite'" _ "$out"
        # Channels last (trap 5): (N, 16, 16, 3) uint8 pictures are named as such.
        "$p" -c "
import h5py, numpy as np, sys
with h5py.File(sys.argv[1], 'w') as f:
    f.attrs['format'] = 'vae_dist-dataset'
    f['train/x'] = np.random.default_rng(1).integers(0, 256, (256, 16, 16, 3)).astype(np.uint8)
" "$WORK/nhwc.h5"
        out=$(run_np 2 train "${T[@]}" --set data.path="$WORK/nhwc.h5" --set train.max_steps=2 2>&1)
        check "(N, H, W, C) pictures: a warning names the channel order and the transpose" \
            bash -c "echo \"\$1\" | grep -q 'is (N, 16, 16, 3): vae_dist reads pictures as (N, C, H, W).*transpose(0, 3, 1, 2)'" _ "$out"
        break
    fi
done
finish
