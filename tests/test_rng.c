/* Counter-based RNG: pure function of its counter, valid permutations,
 * normal moments. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/rng.h"

static void test_pure_function_of_counter(void **state)
{
    (void)state;
    float a[10], b[10], c[10];
    rng_normal(a, 10, 42, RNG_NOISE, 7, 123);
    rng_normal(b, 10, 42, RNG_NOISE, 7, 123);
    rng_normal(c, 10, 42, RNG_NOISE, 7, 124);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
    /* A prefix is the same numbers: drawing 3 or 10 agrees on the first 3. */
    float d[3];
    rng_normal(d, 3, 42, RNG_NOISE, 7, 123);
    assert_memory_equal(a, d, sizeof d);
}

static void test_uniform_from_is_a_slice(void **state)
{
    (void)state;
    /* Any part of a sequence, from any offset (aligned to a block or not),
     * is the same bits as that part of the whole: what lets a rank
     * initialize only its slice of the parameters. */
    enum { N = 37 };
    float all[N], part[N];
    rng_uniform(all, N, -0.5f, 0.5f, 11, RNG_TEST, 3, 0);
    for (size_t first = 0; first < N; first++)
        for (size_t n = 0; first + n <= N; n++) {
            rng_uniform_from(part, first, n, -0.5f, 0.5f, 11, RNG_TEST, 3, 0);
            assert_memory_equal(part, all + first, n * sizeof *part);
        }
}

static void test_permutation_is_bijection(void **state)
{
    (void)state;
    enum { N = 1001 };
    uint32_t p[N], q[N];
    char seen[N] = {0};
    rng_permutation(p, N, 1, RNG_SHUFFLE, 0);
    for (int i = 0; i < N; i++) {
        assert_true(p[i] < N);
        assert_false(seen[p[i]]);
        seen[p[i]] = 1;
    }
    rng_permutation(q, N, 1, RNG_SHUFFLE, 1);
    assert_memory_not_equal(p, q, sizeof p);
    /* Not the identity, and position 0 is roughly uniform over many epochs. */
    int first_small = 0;
    for (uint32_t e = 0; e < 2000; e++) {
        rng_permutation(q, 10, 1, RNG_SHUFFLE, e);
        first_small += q[0] < 5;
    }
    assert_true(first_small > 900 && first_small < 1100);
}

static void test_normal_moments(void **state)
{
    (void)state;
    enum { N = 200000 };
    float *x = malloc(N * sizeof *x);
    rng_normal(x, N, 9, RNG_TEST, 0, 0);
    double s = 0, s2 = 0;
    for (int i = 0; i < N; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
    }
    double mean = s / N, var = s2 / N - mean * mean;
    assert_true(fabs(mean) < 0.01);
    assert_true(fabs(var - 1) < 0.02);
    free(x);
    float u[1000];
    rng_uniform(u, 1000, -2, 3, 1, RNG_INIT, 0, 0);
    for (int i = 0; i < 1000; i++)
        assert_true(u[i] > -2 && u[i] < 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pure_function_of_counter),
        cmocka_unit_test(test_uniform_from_is_a_slice),
        cmocka_unit_test(test_permutation_is_bijection),
        cmocka_unit_test(test_normal_moments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
