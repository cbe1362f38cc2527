/* Linear layer on OpenBLAS sgemm (see linear.h; conv.c is the other file
 * that calls BLAS). Shapes follow PyTorch's nn.Linear so that weights compare
 * directly. */
#include "model/linear.h"

#include <cblas.h>
#include <string.h>

void linear_forward(float *y, const float *x, const float *w, const float *b, size_t n_b, size_t n_in,
                    size_t n_out)
{
    for (size_t r = 0; r < n_b; r++)
        memcpy(y + r * n_out, b, n_out * sizeof *y);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n_b, (int)n_out, (int)n_in, 1.0f, x, (int)n_in,
                w, (int)n_in, 1.0f, y, (int)n_out);
}

void linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                     size_t n_b, size_t n_in, size_t n_out)
{
    linear_backward_weights(dw, db, dy, x, n_b, n_in, n_out);
    linear_backward_input(dx, dy, w, n_b, n_in, n_out);
}

void linear_backward_weights(float *dw, float *db, const float *dy, const float *x, size_t n_b, size_t n_in,
                             size_t n_out)
{
    /* dw (O, I) += dyᵀ (O, B) · x (B, I) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n_out, (int)n_in, (int)n_b, 1.0f, dy,
                (int)n_out, x, (int)n_in, 1.0f, dw, (int)n_in);
    for (size_t r = 0; r < n_b; r++)
        for (size_t o = 0; o < n_out; o++)
            db[o] += dy[r * n_out + o];
}

void linear_backward_input(float *dx, const float *dy, const float *w, size_t n_b, size_t n_in, size_t n_out)
{
    /* dx (B, I) = dy (B, O) · w (O, I) */
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n_b, (int)n_in, (int)n_out, 1.0f, dy,
                    (int)n_out, w, (int)n_in, 0.0f, dx, (int)n_in);
}

void linear_grad_range(float *dwb, const float *dy, const float *x, size_t n_b, size_t n_in, size_t n_out,
                       size_t lo, size_t hi)
{
    size_t n_w = n_out * n_in, a = lo, e = hi < n_w ? hi : n_w;
    while (a < e) {
        size_t o = a / n_in, i0 = a % n_in;
        if (i0 == 0 && e - a >= n_in) { /* whole rows: dw[rows] = dy[:, rows]ᵀ · x */
            size_t rows = (e - a) / n_in;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)rows, (int)n_in, (int)n_b, 1.0f, dy + o,
                        (int)n_out, x, (int)n_in, 0.0f, dwb + a, (int)n_in);
            a += rows * n_in;
        } else { /* part of row o: dw[o, i0:i1] = x[:, i0:i1]ᵀ · dy[:, o] */
            size_t i1 = n_in - i0 < e - a ? n_in : i0 + (e - a);
            cblas_sgemv(CblasRowMajor, CblasTrans, (int)n_b, (int)(i1 - i0), 1.0f, x + i0, (int)n_in, dy + o,
                        (int)n_out, 0.0f, dwb + a, 1);
            a += i1 - i0;
        }
    }
    if (hi <= n_w)
        return;
    size_t o0 = (lo > n_w ? lo : n_w) - n_w, o1 = (hi < n_w + n_out ? hi : n_w + n_out) - n_w;
    float *db = dwb + n_w;
    memset(db + o0, 0, (o1 - o0) * sizeof *db);
    for (size_t r = 0; r < n_b; r++)
        for (size_t o = o0; o < o1; o++)
            db[o] += dy[r * n_out + o];
}

void linear_forward_ref(float *y, const float *x, const float *w, const float *b, size_t n_b, size_t n_in,
                        size_t n_out)
{
    for (size_t r = 0; r < n_b; r++)
        for (size_t o = 0; o < n_out; o++) {
            double s = b[o];
            for (size_t i = 0; i < n_in; i++)
                s += (double)x[r * n_in + i] * w[o * n_in + i];
            y[r * n_out + o] = (float)s;
        }
}

void linear_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                         size_t n_b, size_t n_in, size_t n_out)
{
    for (size_t o = 0; o < n_out; o++) {
        for (size_t i = 0; i < n_in; i++) {
            double s = 0;
            for (size_t r = 0; r < n_b; r++)
                s += (double)dy[r * n_out + o] * x[r * n_in + i];
            dw[o * n_in + i] += (float)s;
        }
        double s = 0;
        for (size_t r = 0; r < n_b; r++)
            s += dy[r * n_out + o];
        db[o] += (float)s;
    }
    if (dx)
        for (size_t r = 0; r < n_b; r++)
            for (size_t i = 0; i < n_in; i++) {
                double s = 0;
                for (size_t o = 0; o < n_out; o++)
                    s += (double)dy[r * n_out + o] * w[o * n_in + i];
                dx[r * n_in + i] = (float)s;
            }
}

void linear_set_threads(int n)
{
    openblas_set_num_threads(n);
}

int linear_threads(void)
{
    return openblas_get_num_threads();
}

const char *linear_kernels(void)
{
    return openblas_get_corename();
}

/* OpenBLAS's x86-64 kernels by the widest vectors they use: 1 SSE, 2 AVX,
 * 3 AVX2 and FMA, 4 AVX-512. Names this table does not know (a newer
 * OpenBLAS's) are taken to be as good as any CPU. */
static int kernels_level(const char *name)
{
    static const struct {
        const char *name;
        int level;
    } known[] = {{"SapphireRapids", 4}, {"Cooperlake", 4},    {"SkylakeX", 4},
                 {"Haswell", 3},        {"Zen", 3},           {"Excavator", 3},
                 {"Steamroller", 2},    {"Piledriver", 2},    {"Bulldozer", 2},
                 {"Sandybridge", 2},    {"Katmai", 1},        {"Coppermine", 1},
                 {"Northwood", 1},      {"Prescott", 1},      {"Banias", 1},
                 {"Atom", 1},           {"Core2", 1},         {"Penryn", 1},
                 {"Dunnington", 1},     {"Nehalem", 1},       {"Athlon", 1},
                 {"Opteron", 1},        {"Opteron(SSE3)", 1}, {"Barcelona", 1},
                 {"Nano", 1},           {"Bobcat", 1}};
    for (size_t i = 0; name && i < sizeof known / sizeof *known; i++)
        if (!strcmp(name, known[i].name))
            return known[i].level;
    return 5;
}

const char *linear_kernels_for_cpu(const char *kernels)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init(); /* libgcc's answer includes the OS's support for the YMM and ZMM state */
    const char *best = NULL;
    int level = 1;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl")) {
        /* The names OpenBLAS itself gives such a CPU when it does not know its model. */
        best = __builtin_cpu_supports("avx512bf16") ? "Cooperlake" : "SkylakeX";
        level = 4;
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        best = "Haswell";
        level = 3;
    } else if (__builtin_cpu_supports("avx")) {
        best = "Sandybridge";
        level = 2;
    }
    return kernels_level(kernels) < level ? best : NULL;
#else
    (void)kernels;
    return NULL;
#endif
}
