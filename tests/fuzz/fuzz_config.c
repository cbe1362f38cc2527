/*
 * libFuzzer target: the config reader. Any text either parses or is refused
 * with a message; what parses must write back to text that parses to the
 * same config (the stored config of every checkpoint goes through this).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), err[1024];
    VAE_ASSERT(text);
    memcpy(text, data, size);
    text[size] = 0;
    struct config a, b;
    config_defaults(&a);
    if (config_from_string(&a, text, err, sizeof err) == 0) {
        config_validate(&a, err, sizeof err);
        char *again = config_to_string(&a);
        VAE_ASSERT(again);
        config_defaults(&b);
        VAE_ASSERT(config_from_string(&b, again, err, sizeof err) == 0);
        char diff[4096];
        VAE_ASSERT(config_diff(&a, &b, 1, diff, sizeof diff) == 0);
        VAE_ASSERT(config_diff(&a, &b, 0, diff, sizeof diff) == 0);
        free(again);
    }
    free(text);
    return 0;
}
