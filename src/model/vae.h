/*
 * The VAE: MLP encoder x → h … → (μ, log σ²), reparameterization
 * z = μ + σ·ε, MLP decoder z → … → logits (Bernoulli) or means (Gaussian),
 * and the negative ELBO per sample = reconstruction + β·KL(q(z|x) ‖ N(0, I)).
 *
 * Letters: B batch, D input, H hidden, Z latent.
 * Parameters, gradients live in one flat buffer each (params, grads), laid
 * out layer by layer in forward order (each layer: w (O, I), then b (O)),
 * then the learned Gaussian log variance (D) if any. The μ and log σ² heads
 * are one fused layer (2Z, H): rows [0, Z) give μ, rows [Z, 2Z) log σ².
 * Initialization follows PyTorch's nn.Linear: w, b ~ U(-1/√I, 1/√I), drawn
 * from Philox(seed, RNG_INIT, stream = 2·layer (+1 for b)).
 */
#ifndef VAE_VAE_H
#define VAE_VAE_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/tensor.h"

#define VAE_MAX_LAYERS  (2 * CONFIG_MAX_HIDDEN + 2)
#define VAE_MAX_TENSORS (2 * VAE_MAX_LAYERS + 1)

struct vae_layer {
    size_t w_off, b_off; /* offsets into params/grads: w (O, I), b (O) */
    size_t n_in, n_out;  /* I, O */
    int has_act;         /* activation after this layer */
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
};

/* Per-batch sums of the loss terms (over samples). */
struct vae_loss {
    double rec, kl;
};

/*
 * Build the model for inputs of dimension n_in and batches of at most
 * max_batch samples; allocates everything. Returns 0, or -1 with a message
 * (model too large). vae_free is safe on a half-built or zeroed model.
 */
int vae_init(struct vae *m, const struct config *cfg, size_t n_in, size_t max_batch);
void vae_free(struct vae *m);

/* Deterministic initialization from the seed (same on every rank). */
void vae_init_params(struct vae *m, uint64_t seed);

/*
 * Forward pass on x (B, D) with noise eps (B, Z) (z = μ + σ·ε). Writes the
 * per-sample reconstruction and KL terms into rec (B) and kl (B) when not
 * NULL, and returns their sums. Keeps activations for vae_backward.
 */
struct vae_loss vae_forward(struct vae *m, const float *x, const float *eps, size_t n_b, double *rec,
                            double *kl);

/*
 * Backward of  scale · Σ_samples (rec + beta·KL)  after vae_forward on the
 * same x, eps; *adds* into m->grads. After each layer's gradients are final,
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

/* Decoder only: out (B, D) = decoder mean (probabilities or Gaussian means) of z (B, Z). */
void vae_decode(struct vae *m, float *out, const float *z, size_t n_b);

/* Encoder only: mu (B, Z), logvar (B, Z) of x (B, D). */
void vae_encode(struct vae *m, float *mu, float *logvar, const float *x, size_t n_b);

#endif
