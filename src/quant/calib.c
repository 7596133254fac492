/*
 * calib.c - calibration windows: nsamples x seqlen tokens drawn at random
 * offsets of a tokenized text, as GPTQ's data loaders draw them
 * (random.randint(0, n - seqlen - 1) per window), from a splitmix64 stream
 * so a seed reproduces the same windows on any machine.
 */
#include "llmpress/quant.h"

#include "core/status_impl.h"

#include <stdlib.h>
#include <string.h>

lp_status lp_calib_sample(const int32_t *ids, int64_t n, int64_t nsamples, int64_t seqlen, uint64_t seed,
                          int32_t **out) {
    *out = NULL;
    if (nsamples <= 0 || seqlen <= 0)
        return lp_fail(LP_ERR_ARG, "calibration: --nsamples %lld and --seqlen %lld must be positive",
                       (long long)nsamples, (long long)seqlen);
    if (n <= seqlen)
        return lp_fail(LP_ERR_ARG, "calibration text too short: %lld tokens, but a window needs %lld + 1; "
                       "give a longer --calib file or a smaller --seqlen", (long long)n, (long long)seqlen);
    int32_t *w = malloc((size_t)(nsamples * seqlen) * sizeof(int32_t));
    if (!w) return lp_fail(LP_ERR_NOMEM, "out of memory for %lld calibration windows", (long long)nsamples);
    uint64_t s = seed;
    for (int64_t i = 0; i < nsamples; i++) {
        /* splitmix64; offset uniform in [0, n - seqlen), like random.randint(0, n - seqlen - 1) */
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        int64_t off = (int64_t)(z % (uint64_t)(n - seqlen));
        memcpy(w + i * seqlen, ids + off, (size_t)seqlen * sizeof(int32_t));
    }
    *out = w;
    return LP_OK;
}
