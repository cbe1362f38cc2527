/*
 * MPI wall (see comm.h). The only file of vae_dist that includes mpi.h
 * (src/data reaches the communicator through comm_native for parallel HDF5).
 */
#include "comm/comm.h"

#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"

struct comm {
    MPI_Comm mpi;
    int rank, size;
};

struct comm_reducer {
    const struct comm *c;
    float *buf;
    size_t n_buckets;
    size_t *off;      /* n_buckets + 1 offsets into buf */
    MPI_Request *req; /* one per bucket */
};

static struct comm g_world, g_self;

/*
 * The collective watchdog (comm_watchdog_start): every MPI call goes through
 * MPI_CHECK, which notes what this rank is waiting in and since when; a
 * thread ends the job when one wait outlasts the timeout. Atomics: the
 * thread reads what the main thread writes.
 */
static struct {
    _Atomic(const char *) what; /* the call or region waited in, or NULL */
    _Atomic int64_t since_ms;   /* when the outermost wait began (timer_now, ms) */
    _Atomic int depth;          /* nested waits: a region holding MPI calls */
    _Atomic int64_t step;       /* the training step, for the message (-1: none) */
    double timeout_s;           /* 0: no watchdog */
} g_watch = {.step = -1};

static void watch_enter(const char *what)
{
    if (atomic_fetch_add(&g_watch.depth, 1) == 0) {
        atomic_store(&g_watch.since_ms, (int64_t)(timer_now() * 1e3));
        atomic_store(&g_watch.what, what);
    }
}

static void watch_leave(void)
{
    if (atomic_fetch_sub(&g_watch.depth, 1) == 1)
        atomic_store(&g_watch.what, NULL);
}

#define MPI_CHECK(call)                                                                                      \
    do {                                                                                                     \
        watch_enter(#call);                                                                                  \
        int rc_ = (call);                                                                                    \
        watch_leave();                                                                                       \
        if (rc_ != MPI_SUCCESS) {                                                                            \
            char msg_[MPI_MAX_ERROR_STRING];                                                                 \
            int len_ = 0;                                                                                    \
            MPI_Error_string(rc_, msg_, &len_);                                                              \
            vae_fatal(__FILE__, __LINE__, "%s failed: %s", #call, msg_);                                     \
        }                                                                                                    \
    } while (0)

/* MPI's counts are int: chunk anything larger. */
#define CHUNK ((size_t)INT_MAX / 2)

static _Noreturn void abort_hook(int code)
{
    MPI_Abort(MPI_COMM_WORLD, code);
    exit(code); /* not reached */
}

_Noreturn void comm_abort(int code)
{
    abort_hook(code);
}

static void comm_wrap(struct comm *c, MPI_Comm mpi)
{
    c->mpi = mpi;
    MPI_CHECK(MPI_Comm_rank(mpi, &c->rank));
    MPI_CHECK(MPI_Comm_size(mpi, &c->size));
}

struct comm *comm_init(int *argc, char ***argv)
{
    int inited = 0;
    /*
     * Open MPI's OMPIO opens every file with a shared-file-pointer component;
     * its "lockedfile" one builds a lock-file name in a 256-byte stack buffer
     * and aborts ("stack smashing detected") on paths of about 246 bytes or
     * more (open-mpi/ompi#13565, fixed after 4.1). vae_dist never uses shared
     * file pointers, so that component is left out unless the user chose
     * components themselves.
     */
    setenv("OMPI_MCA_sharedfp", "^lockedfile", 0);
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(argc, argv) != MPI_SUCCESS) {
        log_error("MPI_Init failed");
        exit(VAE_EXIT_FATAL);
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
    comm_wrap(&g_world, MPI_COMM_WORLD);
    comm_wrap(&g_self, MPI_COMM_SELF);
    log_set_rank(g_world.rank, g_world.size);
    error_set_abort_hook(abort_hook);
    return &g_world;
}

/* The watchdog thread: polls a few times per timeout; never returns. */
static void *watchdog_main(void *arg)
{
    (void)arg;
    double poll = g_watch.timeout_s / 8 < 1.0 ? g_watch.timeout_s / 8 : 1.0;
    struct timespec ts = {(time_t)poll, (long)((poll - (double)(time_t)poll) * 1e9)};
    for (;;) {
        nanosleep(&ts, NULL);
        const char *what = atomic_load(&g_watch.what);
        double waited = timer_now() - (double)atomic_load(&g_watch.since_ms) / 1e3;
        if (!what || waited < g_watch.timeout_s)
            continue;
        long long step = (long long)atomic_load(&g_watch.step);
        char host[256] = "?", at[48] = "";
        gethostname(host, sizeof host);
        if (step >= 0)
            snprintf(at, sizeof at, " at step %lld", step);
        log_error(
            "collective watchdog on %s: waited %.0f s (comm.timeout_s = %g) in %.*s%s: a rank or node "
            "is gone or the network is cut; ending the job (HINT: --resume auto from the last checkpoint; "
            "raise comm.timeout_s if a legitimate wait takes this long)",
            host, waited, g_watch.timeout_s, (int)strcspn(what, "("), what, at);
        fflush(NULL);
        /* Not MPI_Abort: MPI is waiting on the main thread, and its runtime
         * may be cut off too; the launcher sees this rank's exit and ends the rest. */
        _exit(VAE_EXIT_FATAL);
    }
    return NULL;
}

int comm_watchdog_start(double timeout_s)
{
    static int started;
    if (timeout_s <= 0 || started)
        return 0;
    g_watch.timeout_s = timeout_s;
    pthread_t th;
    if (pthread_create(&th, NULL, watchdog_main, NULL))
        return -1;
    pthread_detach(th);
    started = 1;
    return 0;
}

void comm_watch_step(int64_t step)
{
    atomic_store(&g_watch.step, step);
}

void comm_watch_begin(const char *what)
{
    watch_enter(what);
}

void comm_watch_end(void)
{
    watch_leave();
}

struct comm *comm_self(void)
{
    return &g_self;
}

void comm_finalize(void)
{
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin)
        MPI_Finalize();
}

int comm_rank(const struct comm *c)
{
    return c->rank;
}

int comm_size(const struct comm *c)
{
    return c->size;
}

const void *comm_native(const struct comm *c)
{
    return &c->mpi;
}

int comm_nodes(const struct comm *c)
{
    MPI_Comm node;
    int local = 0, leader, nodes = 0;
    MPI_CHECK(MPI_Comm_split_type(c->mpi, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node));
    MPI_CHECK(MPI_Comm_rank(node, &local));
    MPI_CHECK(MPI_Comm_free(&node));
    leader = local == 0;
    MPI_CHECK(MPI_Allreduce(&leader, &nodes, 1, MPI_INT, MPI_SUM, c->mpi));
    return nodes;
}

struct comm *comm_split_node(const struct comm *c)
{
    struct comm *node = malloc(sizeof *node);
    VAE_ASSERT(node);
    MPI_Comm mpi;
    MPI_CHECK(MPI_Comm_split_type(c->mpi, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &mpi));
    MPI_CHECK(MPI_Comm_set_errhandler(mpi, MPI_ERRORS_RETURN));
    comm_wrap(node, mpi);
    return node;
}

void comm_free(struct comm *c)
{
    if (c) {
        MPI_CHECK(MPI_Comm_free(&c->mpi));
        free(c);
    }
}

int comm_agree(const struct comm *c, int ok)
{
    int mine = ok ? 1 : 0, all = 0;
    MPI_CHECK(MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, c->mpi));
    return all;
}

int comm_first_failure(const struct comm *c, int ok)
{
    int mine = ok ? INT_MAX : c->rank, first = INT_MAX;
    MPI_CHECK(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, c->mpi));
    return first == INT_MAX ? -1 : first;
}

void comm_barrier(const struct comm *c)
{
    MPI_CHECK(MPI_Barrier(c->mpi));
}

void comm_bcast(const struct comm *c, void *buf, size_t n_bytes, int root)
{
    for (size_t off = 0; off < n_bytes; off += CHUNK) {
        size_t n = n_bytes - off < CHUNK ? n_bytes - off : CHUNK;
        MPI_CHECK(MPI_Bcast((char *)buf + off, (int)n, MPI_BYTE, root, c->mpi));
    }
}

static void allreduce(const struct comm *c, void *buf, size_t n, size_t elem_bytes, MPI_Datatype t, MPI_Op op)
{
    if (c->size == 1)
        return;
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t k = n - off < CHUNK ? n - off : CHUNK;
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * elem_bytes, (int)k, t, op, c->mpi));
    }
}

void comm_allreduce_sum_f32(const struct comm *c, float *buf, size_t n)
{
    allreduce(c, buf, n, sizeof *buf, MPI_FLOAT, MPI_SUM);
}

void comm_allreduce_sum_f64(const struct comm *c, double *buf, size_t n)
{
    allreduce(c, buf, n, sizeof *buf, MPI_DOUBLE, MPI_SUM);
}

void comm_allreduce_sum_i64(const struct comm *c, int64_t *buf, size_t n)
{
    allreduce(c, buf, n, sizeof *buf, MPI_INT64_T, MPI_SUM);
}

void comm_allreduce_max_f64(const struct comm *c, double *buf, size_t n)
{
    allreduce(c, buf, n, sizeof *buf, MPI_DOUBLE, MPI_MAX);
}

void comm_allreduce_min_f64(const struct comm *c, double *buf, size_t n)
{
    allreduce(c, buf, n, sizeof *buf, MPI_DOUBLE, MPI_MIN);
}

void comm_allgather_u64(const struct comm *c, uint64_t value, uint64_t *all)
{
    MPI_CHECK(MPI_Allgather(&value, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, c->mpi));
}

void comm_allgather_bytes(const struct comm *c, const void *mine, size_t n_bytes, void *all)
{
    VAE_ASSERT(n_bytes <= INT_MAX);
    MPI_CHECK(MPI_Allgather(mine, (int)n_bytes, MPI_BYTE, all, (int)n_bytes, MPI_BYTE, c->mpi));
}

void comm_allgatherv_f32(const struct comm *c, float *buf, const size_t *count, const size_t *off)
{
    int p = c->size;
    if (p == 1)
        return;
    if (off[p - 1] + count[p - 1] > INT_MAX) {
        /* Beyond int counts: each rank broadcasts its slice in turn (chunked). */
        for (int q = 0; q < p; q++)
            comm_bcast(c, buf + off[q], count[q] * sizeof *buf, q);
        return;
    }
    int *cnt = malloc(2 * (size_t)p * sizeof *cnt);
    VAE_ASSERT(cnt);
    int *dsp = cnt + p;
    for (int q = 0; q < p; q++) {
        cnt[q] = (int)count[q];
        dsp[q] = (int)off[q];
    }
    MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, buf, cnt, dsp, MPI_FLOAT, c->mpi));
    free(cnt);
}

void comm_alltoallv_bytes(const struct comm *c, const void *send, const size_t *send_bytes,
                          const size_t *send_off, void *recv, const size_t *recv_bytes,
                          const size_t *recv_off)
{
    int p = c->size;
    int *buf = malloc(4 * (size_t)p * sizeof *buf);
    VAE_ASSERT(buf);
    int *sc = buf, *sd = buf + p, *rc = buf + 2 * p, *rd = buf + 3 * p;
    for (int q = 0; q < p; q++) {
        if (send_bytes[q] > INT_MAX || send_off[q] > INT_MAX || recv_bytes[q] > INT_MAX ||
            recv_off[q] > INT_MAX)
            vae_fatal(__FILE__, __LINE__,
                      "alltoallv of more than %d bytes to one rank: use more ranks or smaller shards",
                      INT_MAX);
        sc[q] = (int)send_bytes[q];
        sd[q] = (int)send_off[q];
        rc[q] = (int)recv_bytes[q];
        rd[q] = (int)recv_off[q];
    }
    MPI_CHECK(MPI_Alltoallv(send, sc, sd, MPI_BYTE, recv, rc, rd, MPI_BYTE, c->mpi));
    free(buf);
}

struct comm_reducer *comm_reducer_init(const struct comm *c, float *buf, const size_t *bucket_off,
                                       size_t n_buckets)
{
    struct comm_reducer *r = calloc(1, sizeof *r);
    VAE_ASSERT(r);
    r->c = c;
    r->buf = buf;
    r->n_buckets = n_buckets;
    r->off = malloc((n_buckets + 1) * sizeof *r->off);
    r->req = malloc(n_buckets * sizeof *r->req);
    VAE_ASSERT(r->off && r->req);
    memcpy(r->off, bucket_off, (n_buckets + 1) * sizeof *r->off);
    for (size_t k = 0; k < n_buckets; k++) {
        VAE_ASSERT(r->off[k + 1] - r->off[k] <= INT_MAX);
        r->req[k] = MPI_REQUEST_NULL;
    }
    return r;
}

void comm_reducer_start(struct comm_reducer *r, size_t bucket)
{
    if (r->c->size == 1)
        return;
    size_t n = r->off[bucket + 1] - r->off[bucket];
    MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, r->buf + r->off[bucket], (int)n, MPI_FLOAT, MPI_SUM, r->c->mpi,
                             &r->req[bucket]));
}

void comm_reducer_progress(struct comm_reducer *r)
{
    int done;
    if (r->c->size > 1)
        MPI_CHECK(MPI_Testall((int)r->n_buckets, r->req, &done, MPI_STATUSES_IGNORE));
}

void comm_reducer_wait(struct comm_reducer *r)
{
    if (r->c->size > 1)
        MPI_CHECK(MPI_Waitall((int)r->n_buckets, r->req, MPI_STATUSES_IGNORE));
}

void comm_reducer_free(struct comm_reducer *r)
{
    if (!r)
        return;
    free(r->off);
    free(r->req);
    free(r);
}

/* Node-shared exchange buffers (see comm.h). */
struct comm_node {
    MPI_Comm node, cross; /* the ranks of this node; the ranks of the same local rank on every node */
    MPI_Win win;
    int local, n_local, n_nodes;
    size_t stride; /* the vectors' padded length in the window */
    int n_grads;   /* gradient vectors: one per local rank, or one that all share */
    float *base;   /* the gradient vectors, then the parameters, then the extra area */
    size_t *lo;    /* n_local + 1 slice bounds: local rank q owns [lo[q], lo[q + 1]) */
};

static void node_sync(struct comm_node *nd)
{
    MPI_CHECK(MPI_Win_sync(nd->win));
    MPI_CHECK(MPI_Barrier(nd->node));
    MPI_CHECK(MPI_Win_sync(nd->win));
}

static void node_free(struct comm_node *nd)
{
    if (nd->base) {
        MPI_CHECK(MPI_Win_unlock_all(nd->win));
        MPI_CHECK(MPI_Win_free(&nd->win));
    }
    if (nd->cross != MPI_COMM_NULL)
        MPI_Comm_free(&nd->cross);
    if (nd->node != MPI_COMM_NULL)
        MPI_Comm_free(&nd->node);
    free(nd->lo);
    free(nd);
}

struct comm_node *comm_node_open(const struct comm *c, size_t n, size_t n_extra, int one_grads)
{
    struct comm_node *nd = calloc(1, sizeof *nd);
    VAE_ASSERT(nd);
    nd->node = nd->cross = MPI_COMM_NULL;
    MPI_CHECK(MPI_Comm_split_type(c->mpi, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &nd->node));
    MPI_CHECK(MPI_Comm_rank(nd->node, &nd->local));
    MPI_CHECK(MPI_Comm_size(nd->node, &nd->n_local));
    /* Slices must line up across nodes: every node needs the same rank count. */
    int range[2] = {-nd->n_local, nd->n_local};
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, range, 2, MPI_INT, MPI_MAX, c->mpi));
    if (-range[0] != range[1] || nd->n_local == 1) {
        if (c->rank == 0 && range[1] > 1)
            log_info("nodes run %d to %d ranks: gradients are reduced with MPI_Allreduce", -range[0],
                     range[1]);
        node_free(nd);
        return NULL;
    }
    MPI_CHECK(MPI_Comm_split(c->mpi, nd->local, c->rank, &nd->cross));
    MPI_CHECK(MPI_Comm_size(nd->cross, &nd->n_nodes));
    nd->stride = (n + 15) / 16 * 16;
    nd->lo = malloc(((size_t)nd->n_local + 1) * sizeof *nd->lo);
    VAE_ASSERT(nd->lo);
    for (int q = 0; q <= nd->n_local; q++) /* slices of whole 64-byte lines */
        nd->lo[q] = q == nd->n_local ? n : nd->stride / 16 * (size_t)q / (size_t)nd->n_local * 16;
    nd->n_grads = one_grads ? 1 : nd->n_local;
    size_t total =
        (((size_t)nd->n_grads + 1) * nd->stride + (size_t)nd->n_local * n_extra) * sizeof(float) + 64;
    MPI_Aint size = nd->local == 0 ? (MPI_Aint)total : 0;
    int disp;
    float *mine = NULL;
    int ok =
        MPI_Win_allocate_shared(size, sizeof(float), MPI_INFO_NULL, nd->node, &mine, &nd->win) == MPI_SUCCESS;
    if (ok) {
        MPI_CHECK(MPI_Win_shared_query(nd->win, 0, &size, &disp, &nd->base));
        MPI_CHECK(MPI_Win_lock_all(MPI_MODE_NOCHECK, nd->win));
    }
    if (!comm_agree(c, ok)) {
        if (c->rank == 0)
            log_info("no shared-memory window of %.1f MB per node (/dev/shm too small?): gradients are "
                     "reduced with MPI_Allreduce",
                     (double)total / 1e6);
        node_free(nd);
        return NULL;
    }
    return nd;
}

void comm_node_close(struct comm_node *nd)
{
    if (nd)
        node_free(nd);
}

/* Vector k of the window (k < n_grads: rank k's gradients; then the parameters), 64-byte aligned. */
static float *node_vec(const struct comm_node *nd, int k)
{
    float *aligned = (float *)(((uintptr_t)nd->base + 63) & ~(uintptr_t)63);
    return aligned + (size_t)k * nd->stride;
}

void comm_node_range(const struct comm_node *nd, size_t *lo, size_t *hi)
{
    *lo = nd->lo[nd->local];
    *hi = nd->lo[nd->local + 1];
}

void comm_node_part(const struct comm_node *nd, size_t *lo, size_t *hi)
{
    int k;
    MPI_CHECK(MPI_Comm_rank(nd->cross, &k));
    size_t a = nd->lo[nd->local], len = nd->lo[nd->local + 1] - a;
    *lo = a + len * (size_t)k / (size_t)nd->n_nodes;
    *hi = a + len * (size_t)(k + 1) / (size_t)nd->n_nodes;
}

float *comm_node_grads(struct comm_node *nd)
{
    return node_vec(nd, nd->n_grads == 1 ? 0 : nd->local);
}

void comm_node_reduce(struct comm_node *nd, void (*on_block)(void *, const float *, size_t), void *ctx)
{
    const int me = nd->local;
    float *grads = node_vec(nd, me);
    VAE_ASSERT(nd->n_grads == nd->n_local);
    node_sync(nd);
    /* Blocks of the own slice, summed in rank order (0 + 1 + ...) whichever
     * rank adds: the same bits on every node and as one MPI_Allreduce of 2.
     * On one node each block goes to on_block while it is in L1. */
    enum { BLOCK = 2048 };
    float tmp[BLOCK];
    const size_t lo = nd->lo[me], hi = nd->lo[me + 1];
    for (size_t i0 = lo; i0 < hi; i0 += BLOCK) {
        size_t k = hi - i0 < BLOCK ? hi - i0 : BLOCK;
        for (int q = 0; q < nd->n_local; q++) {
            const float *in = node_vec(nd, q) + i0;
            if (q == 0)
                memcpy(tmp, in, k * sizeof *tmp);
            else
                for (size_t j = 0; j < k; j++)
                    tmp[j] += in[j];
        }
        memcpy(grads + i0, tmp, k * sizeof *tmp);
        if (nd->n_nodes == 1)
            on_block(ctx, tmp, k);
    }
    if (nd->n_nodes > 1) {
        allreduce(&(struct comm){nd->cross, 0, nd->n_nodes}, grads + lo, hi - lo, sizeof *grads, MPI_FLOAT,
                  MPI_SUM);
        on_block(ctx, grads + lo, hi - lo);
    }
}

void comm_node_cross_sum(struct comm_node *nd)
{
    if (nd->n_nodes == 1)
        return;
    size_t lo = nd->lo[nd->local], hi = nd->lo[nd->local + 1];
    allreduce(&(struct comm){nd->cross, 0, nd->n_nodes}, comm_node_grads(nd) + lo, hi - lo, sizeof(float),
              MPI_FLOAT, MPI_SUM);
}

float *comm_node_extra(struct comm_node *nd)
{
    return node_vec(nd, nd->n_grads + 1);
}

void comm_node_rank(const struct comm_node *nd, int *local, int *n_local)
{
    *local = nd->local;
    *n_local = nd->n_local;
}

float *comm_node_params(struct comm_node *nd)
{
    return node_vec(nd, nd->n_grads);
}

void comm_node_sync(struct comm_node *nd)
{
    node_sync(nd);
}

double comm_node_sum(struct comm_node *nd, double x)
{
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_SUM, nd->node));
    return x;
}
