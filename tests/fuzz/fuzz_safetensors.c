/*
 * fuzz_safetensors.c - libFuzzer harness for the safetensors reader.
 *
 * Feeds the fuzzer's bytes to lp_st_parse_impl, the same validation that
 * lp_st_open runs on a mapped file (no temporary files). Oracle, beyond "no
 * crash, no sanitizer report": for an accepted file every tensor's bytes lie
 * inside the input and after the header, its size matches dtype x shape, no
 * two tensors overlap, lookup by name finds it, and every byte of every
 * tensor is read (so ASan flags any view that escapes the buffer).
 * Rejections must name the file in the message.
 * Build and run: see docs/fuzzing.md.
 */
#include "core/status_impl.h"
#include "io/safetensors.h"
#include "io/safetensors_impl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static volatile unsigned char g_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Copy into an exactly sized heap block so ASan sees its end. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    lp_st_file *f = NULL;
    lp_status st = lp_st_parse_impl(copy, size, "fuzz.safetensors", &f);
    if (st != LP_OK) {
        if (f || !strstr(lp_last_error(), "fuzz.safetensors")) abort();
        free(copy);
        return 0;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | copy[i];
    const uint8_t *buf0 = copy + 8 + hlen, *end = copy + size;
    int64_t n = lp_st_count(f);
    for (int64_t i = 0; i < n; i++) {
        const lp_tensor_view *t = lp_st_at(f, i);
        const uint8_t *p = t->data;
        if (p < buf0 || p > end || t->nbytes > (size_t)(end - p)) abort();
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= t->shape[d];
        if (t->ndim < 0 || t->ndim > LP_MAX_DIMS || numel != t->numel ||
            (size_t)numel * lp_dtype_size(t->dtype) != t->nbytes)
            abort();
        if (lp_st_find(f, t->name) != t) abort();
        for (size_t k = 0; k < t->nbytes; k++) g_sink ^= p[k];
        for (int64_t j = 0; j < i; j++) { /* pairwise overlap check; inputs are small */
            const lp_tensor_view *u = lp_st_at(f, j);
            const uint8_t *q = u->data;
            if (t->nbytes && u->nbytes && p < q + u->nbytes && q < p + t->nbytes) abort();
        }
    }
    (void)lp_st_meta(f, "format");
    lp_st_close(f);
    free(copy);
    return 0;
}
