/*
 * The VAE: encoder x → h … → (μ, log σ²), reparameterization z = μ + σ·ε,
 * decoder z → … → logits (Bernoulli) or means (Gaussian), and the negative
 * ELBO per sample = reconstruction + β·KL(q(z|x) ‖ N(0, I)).
 *
 * model.arch = mlp: fully connected layers (model.hidden) both ways.
 * model.arch = conv, on C×H×W images (NCHW rows, as PyTorch flattens them):
 *   enc.conv0 … (Conv2d + act per stage, model.channels/kernel/stride/padding)
 *   → flatten → enc.0 … (hidden, + act) → enc.head
 *   z → dec.0 … (hidden mirrored, + act) → dec.in (Linear to the last stage's
 *   C·H·W, + act) → dec.conv0 … (ConvTranspose2d mirroring the stages back
 *   to C×H×W, + act except the last, which gives the output).
 *
 * Letters: B batch, D input (C·H·W), H hidden, Z latent.
 * Parameters, gradients live in one flat buffer each (params, grads), laid
 * out layer by layer in forward order (each layer: w (O, I) or, for
 * convolutions, PyTorch's (O, C, k, k) / (in, out, k, k); then b), then the
 * learned Gaussian log variance (D) if any. The μ and log σ² heads are one
 * fused layer (2Z, H): rows [0, Z) give μ, rows [Z, 2Z) log σ².
 * Initialization follows PyTorch's layers: w, b ~ U(-1/√fan_in, 1/√fan_in)
 * (fan_in = I, or C·k·k as PyTorch computes it from the weight's shape),
 * drawn from Philox(seed, RNG_INIT, stream = 2·layer (+1 for b)).
 */
#ifndef VAE_VAE_H
#define VAE_VAE_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/tensor.h"
#include "model/conv.h"

#define VAE_MAX_LAYERS  (4 * CONFIG_MAX_LIST + 3)
#define VAE_MAX_TENSORS (2 * VAE_MAX_LAYERS + 1)

enum layer_kind { LAYER_LINEAR, LAYER_CONV, LAYER_CONVT };

struct vae_layer {
    enum layer_kind kind;
    size_t w_off, b_off; /* offsets into params/grads: w (O, I) or (O, C, k, k); b */
    size_t b_len;        /* values in b */
    size_t n_in, n_out;  /* values per sample in and out (C·H·W for images) */
    size_t fan_in;       /* I, or C·k·k: the initialization bound is 1/√fan_in */
    int has_act;         /* activation after this layer */
    struct conv_geom g;  /* convolutions: the (encoder-direction) geometry */
    float *keep;         /* convolutions: forward → backward workspace (conv.h) */
};

struct vae {
    size_t n_in;      /* D */
    size_t n_latent;  /* Z */
    int activation;   /* enum act_kind */
    int likelihood;   /* enum likelihood_kind */
    float obs_logvar; /* fixed Gaussian log σ² */
    size_t n_layers;
    size_t head; /* index of the fused (μ, log σ²) layer */
    struct vae_layer layer[VAE_MAX_LAYERS];
    size_t obs_logvar_off; /* learned log σ² (D), or SIZE_MAX */
    size_t n_tensors;
    struct tensor_view tensor[VAE_MAX_TENSORS]; /* views into params, for checkpoints */

    size_t n_params;
    float *params; /* (n_params) */
    float *grads;  /* (n_params) */

    /* Workspace for up to max_batch samples; no allocation after init. */
    size_t max_batch;
    float *out[VAE_MAX_LAYERS]; /* output of each layer (B, O), after activation */
    float *z;                   /* (B, Z) */
    float *d_a, *d_b;           /* (B, max width) scratch gradients */
    float *conv_tmp;            /* convolutions' shared scratch (conv.h), or NULL */

    /* Deferred parameter gradients (vae_stash), or NULL: not the model's memory. */
    float *stash;
    size_t stash_rows;
    size_t stash_rank, stash_ranks;

    /* Seconds backward spent on fully connected layers' parameter gradients;
     * the caller resets it (train reports it as t_grads). */
    double t_grads;
};

/* Per-batch sums of the loss terms (over samples). */
struct vae_loss {
    double rec, kl;
};

/*
 * Build the model for inputs of dimension n_in, shaped image[] = C, H, W
 * (NULL or 0s: not images; conv needs them), and batches of at most
 * max_batch samples; allocates everything. Returns 0, or -1 with a message
 * (model too large, no image shape for conv, a conv stage that does not fit
 * its input). vae_free is safe on a half-built or zeroed model.
 */
int vae_init(struct vae *m, const struct config *cfg, size_t n_in, const long image[3], size_t max_batch);
/* vae_init leaving params and grads unwritten, so that their pages cost no
 * memory until written (the trainer's node mode frees them unwritten); the
 * caller writes params before a forward and zeroes grads before a backward. */
int vae_init_unzeroed(struct vae *m, const struct config *cfg, size_t n_in, const long image[3],
                      size_t max_batch);
void vae_free(struct vae *m);

/* Deterministic initialization from the seed (same on every rank). */
void vae_init_params(struct vae *m, uint64_t seed);
/* The same values, only at offsets [lo, hi), into p (n_params long). */
void vae_init_params_range(struct vae *m, float *p, size_t lo, size_t hi, uint64_t seed);

/*
 * Forward pass on x (B, D) with noise eps (B, Z) (z = μ + σ·ε). Writes the
 * per-sample reconstruction and KL terms into rec (B) and kl (B) when not
 * NULL, and returns their sums. Keeps activations for vae_backward.
 */
struct vae_loss vae_forward(struct vae *m, const float *x, const float *eps, size_t n_b, double *rec,
                            double *kl);

/*
 * Backward of  scale · Σ_samples (rec + beta·KL)  after vae_forward on the
 * same x, eps (once per forward: convolutions spend their forward
 * workspace); *adds* into m->grads. After each layer's gradients are final,
 * calls on_ready(ctx, off) (when not NULL): every gradient at offset >= off
 * is final, so buckets there may be reduced while backward goes on.
 */
void vae_backward(struct vae *m, const float *x, const float *eps, size_t n_b, float beta, float scale,
                  void (*on_ready)(void *ctx, size_t off), void *ctx);

/*
 * A training step's model work: vae_forward (sums only) and vae_backward in
 * one, computing the reconstruction term and its gradient in a single pass
 * over the output (the separate calls compute it twice). Same results, bit
 * for bit.
 */
struct vae_loss vae_forward_backward(struct vae *m, const float *x, const float *eps, size_t n_b, float beta,
                                     float scale, void (*on_ready)(void *ctx, size_t off), void *ctx);

/*
 * Importance log weights of one sample x (D) with encoder output mu, logvar
 * (Z) and draws eps (K, Z), K <= max_batch: logw[k] = log p(x|z_k) +
 * log p(z_k) − log q(z_k|x) with z_k = μ + σ·ε_k. Decodes the K draws as one
 * batch. The IWAE bound is logsumexp(logw) − log K; with K = 1 it is the
 * single-sample ELBO estimate (Monte-Carlo KL) of the same ε.
 */
void vae_log_weights(struct vae *m, double *logw, const float *x, const float *mu, const float *logvar,
                     const float *eps, size_t n_k);

/*
 * Deferred parameter gradients, for ranks that share memory and split the
 * parameters (the sliced reduction of train/reduction.h). With a stash set,
 * vae_backward computes only the gradients w.r.t. layer inputs and writes
 * nothing into m->grads; it leaves each layer's input and output gradient
 * in the stash, as row block `rank` of n_ranks blocks of n_rows samples
 * (n_b must be n_rows), and the rank's part of the learned log σ²'s
 * gradient. Once every rank's blocks are in, vae_grads_range computes the
 * parameter gradients at flat offsets [lo, hi) over all n_ranks · n_rows
 * samples, overwriting m->grads there (nothing else). vae_stash_floats: the
 * stash's size in floats, or 0 when the model cannot defer (convolutions).
 * vae_stash(m, NULL, ...) turns it off.
 */
size_t vae_stash_floats(const struct vae *m, size_t n_rows, size_t n_ranks);
void vae_stash(struct vae *m, float *stash, size_t n_rows, size_t rank, size_t n_ranks);
void vae_grads_range(struct vae *m, size_t lo, size_t hi);

/* Decoder only: out (B, D) = decoder mean (probabilities or Gaussian means) of z (B, Z). */
void vae_decode(struct vae *m, float *out, const float *z, size_t n_b);

/* Encoder only: mu (B, Z), logvar (B, Z) of x (B, D). */
void vae_encode(struct vae *m, float *mu, float *logvar, const float *x, size_t n_b);

#endif
