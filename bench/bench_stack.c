/*
 * bench_stack.c - decode speed of a whole synthetic 7B-shaped model, as a
 * fraction of this machine's memory-bandwidth roofline.
 *
 * What: builds an lp_model in memory with Llama-2-7B's shapes (32 layers,
 *   D 4096, F 11008, 32 heads, 32 kv heads, hd 128, V 32000, untied head)
 *   whose 7 decoder linears per layer are qgroup W`bits` g128 asymmetric
 *   (W4 by default; W3 on request), filled with random packed bits, random
 *   finite f16 scales (~0.004 .. 0.016) and random zero points; every layer
 *   has its own memory, so nothing of one token's weights is in cache when
 *   the next token reads them. The head is qgroup W8 g128 asymmetric (what
 *   `llmpress quantize --head-bits 8` makes, the counterpart of llama.cpp's
 *   8-bit output tensor); the embedding is random bf16, read one row per
 *   token; all norms are 1. Then, per thread count, from an empty context:
 *   16 warm-up + 64 timed lp_forward calls of one token each (the logits of
 *   that token included: the head runs), median time per token.
 * Why: bench_qgemv measures one packed gemv against the bandwidth; a decode
 *   step is 224 such products plus the head, attention, norms and the
 *   OpenMP fork/join of each, so the whole stack shows what is lost between
 *   the kernels. A real 7B checkpoint is not needed for speed: the kernels'
 *   work does not depend on the values.
 * Design: bytes per token = the packed bytes of every decoder linear and of
 *   the head (lp_linear_nbytes: q + f16 scales + u8 zeros) - what a decode
 *   step must read from DRAM at least. Not counted: one embedding row (8 KB),
 *   the norms (1 MB) and the f32 KV cache (1 MiB per cached position: about
 *   48 MiB per token at the timed positions 16..79, printed beside the
 *   table, ~1.4% of the W4 weights). The roofline is the read bandwidth
 *   measured in this process just before and just after each thread count's
 *   tokens (their mean): bench_common.h's read+sum loop over a 1 GiB buffer
 *   (median of 10), as bench_qgemv measures it; two figures far apart mean
 *   another job took memory bandwidth or a core meanwhile. The load average
 *   is printed first and last: on a shared machine, numbers taken under load
 *   are not worth comparing.
 *
 * Usage: bench_stack [bits] [threads...]   (bits 2..8, default 4; threads
 *   default 1 2). Memory: the model (3.5 GB at W4, 2.7 GB at W3) + the
 *   1 GiB buffer + 0.26 GB embedding. OMP_WAIT_POLICY=ACTIVE is what
 *   llama.cpp's comparisons use (bench/vs_llamacpp.sh); set it in the
 *   environment, the program does not.
 */
#include "bench_common.h"
#include "format/linear.h"
#include "format/qgroup.h"
#include "format/qgroup_kernels.h"
#include "model/model_impl.h"

#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void openblas_set_num_threads(int);

/* Llama-2-7B's shapes (out x in); bits of the decoder linears vary. */
enum { LAYERS = 32, DIM = 4096, FFN = 11008, HEADS = 32, KV_HEADS = 32, HEAD_DIM = 128, VOCAB = 32000 };
enum { GROUP = 128, HEAD_BITS = 8, WARMUP = 16, TIMED = 64 };

/* A qgroup weight of random content: packed bits, f16 scales in
 * [2^-8, 2^-6) (finite, normal), zero points in [0, 2^bits). Rows are
 * filled in parallel, each from its own xorshift stream (rows fill the same
 * bits for any thread count). */
static lp_qgroup *random_qgroup(int64_t rows, int64_t cols, int bits, uint64_t seed) {
    lp_qgroup *w = calloc(1, sizeof *w);
    if (!w || lp_qgroup_init(w, rows, cols, bits, GROUP, 0) != LP_OK) die("lp_qgroup_init");
    const int64_t words = w->blocks * bits, G = w->ngroups;
    const unsigned zmax = 1u << bits;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        uint64_t s = (seed * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)r * 0xBF58476D1CE4E5B9ull) ^ 1;
        for (int64_t i = 0; i < words; i += 2) { /* two words per step */
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            w->q[r * words + i] = (uint32_t)s;
            if (i + 1 < words) w->q[r * words + i + 1] = (uint32_t)(s >> 32);
        }
        for (int64_t g = 0; g < G; g++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            w->scales[r * G + g] = (uint16_t)(0x1c00 + (s >> 8) % 0x800);
            w->zeros[r * G + g] = (uint8_t)((s >> 40) % zmax);
        }
    }
    return w;
}

/* The in-memory model: shapes as above, linears in W`bits` g128 asym, head W8. */
static lp_model *build_model(int bits) {
    lp_model *m = calloc(1, sizeof *m);
    if (!m) die("calloc");
    lp_config *c = &m->cfg;
    c->arch = LP_ARCH_LLAMA;
    snprintf(c->arch_name, sizeof c->arch_name, "LlamaForCausalLM");
    c->vocab = VOCAB, c->dim = DIM, c->ffn = FFN, c->n_layers = LAYERS;
    c->n_heads = HEADS, c->n_kv_heads = KV_HEADS, c->head_dim = HEAD_DIM;
    c->max_pos = 4096, c->norm_eps = 1e-5f, c->rope_theta = 10000.0, c->rope_type = LP_ROPE_DEFAULT;
    c->tied = false, c->bos = 1, c->eos = 2;
    snprintf(c->dtype, sizeof c->dtype, "bfloat16");
    m->dir = strdup("(synthetic 7B stack)");

    /* norms: one vector of ones serves every norm (read-only) */
    float *ones = malloc(DIM * sizeof *ones);
    if (lp_model_own(m, ones) != LP_OK) die("norms");
    for (int i = 0; i < DIM; i++) ones[i] = 1.0f;
    m->norm = ones;

    /* embedding: V x D random bf16, |x| in [2^-7, 2^-3), one row read per token */
    uint16_t *emb = malloc((size_t)VOCAB * DIM * sizeof *emb);
    if (lp_model_own(m, emb) != LP_OK) die("embedding");
    for (int64_t i = 0; i < (int64_t)VOCAB * DIM; i++) emb[i] = (uint16_t)(0x3c00 + rnd() % 0x200) ^ (rnd() & 0x8000);
    m->embed_raw = emb;
    m->embed_dtype = LP_DT_BF16;

    const int64_t A = HEADS * HEAD_DIM, KVd = KV_HEADS * HEAD_DIM;
    const int64_t rows[LP_NLIN] = {A, KVd, KVd, DIM, FFN, FFN, DIM};
    const int64_t cols[LP_NLIN] = {DIM, DIM, DIM, A, DIM, DIM, FFN};
    m->layers = calloc(LAYERS, sizeof *m->layers);
    if (!m->layers) die("layers");
    for (int64_t l = 0; l < LAYERS; l++) {
        lp_layer *L = &m->layers[l];
        L->attn_norm = L->ffn_norm = ones;
        for (int k = 0; k < LP_NLIN; k++) {
            L->lin[k] = (lp_linear){.rows = rows[k], .cols = cols[k]};
            if (lp_linear_add_part(&L->lin[k], &lp_format_qgroup,
                                   random_qgroup(rows[k], cols[k], bits, (uint64_t)(l * LP_NLIN + k + 1))) != LP_OK)
                die("lp_linear_add_part");
        }
    }
    m->head = (lp_linear){.rows = VOCAB, .cols = DIM};
    if (lp_linear_add_part(&m->head, &lp_format_qgroup, random_qgroup(VOCAB, DIM, HEAD_BITS, 999999)) != LP_OK)
        die("lp_linear_add_part (head)");
    return m;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

int main(int argc, char **argv) {
    int bits = argc > 1 ? atoi(argv[1]) : 4;
    if (bits < 2 || bits > 8) {
        fprintf(stderr, "usage: bench_stack [bits 2..8] [threads...]\n");
        return 2;
    }
    int threads[16], nth = 0;
    for (int i = 2; i < argc && nth < 16; i++)
        if ((threads[nth] = atoi(argv[i])) > 0) nth++;
    if (!nth) threads[nth++] = 1, threads[nth++] = 2;
    qsort(threads, (size_t)nth, sizeof *threads, cmp_int);
    print_load("at start");

    double t0 = omp_get_wtime();
    omp_set_num_threads(threads[nth - 1]);
    lp_model *m = build_model(bits);
    size_t lin_bytes = 0;
    for (int64_t l = 0; l < LAYERS; l++)
        for (int k = 0; k < LP_NLIN; k++) lin_bytes += lp_linear_nbytes(&m->layers[l].lin[k]);
    const size_t head_bytes = lp_linear_nbytes(&m->head), bytes = lin_bytes + head_bytes;
    char d1[128], d2[128];
    lp_linear_describe(&m->layers[0].lin[0], d1, sizeof d1);
    lp_linear_describe(&m->head, d2, sizeof d2);
    printf("\nsynthetic 7B stack: %d layers, D %d, F %d, %d heads, %d kv heads, hd %d, V %d (built in %.1f s)\n"
           "  decoder linears %s: %.3f GB; head %s: %.3f GB; embedding bf16 (one 8 KB row per token)\n"
           "  bytes read per token (linears + head, packed) = %.3f GB; f32 KV cache read at positions %d..%d\n"
           "  adds ~%.0f MB per token on average (not counted); qgroup kernels: %s\n",
           LAYERS, DIM, FFN, HEADS, KV_HEADS, HEAD_DIM, VOCAB, omp_get_wtime() - t0, d1, (double)lin_bytes / 1e9, d2,
           (double)head_bytes / 1e9, (double)bytes / 1e9, WARMUP, WARMUP + TIMED - 1,
           (double)LAYERS * 2 * KV_HEADS * HEAD_DIM * 4 * (WARMUP + (TIMED - 1) / 2.0) / 1e6,
           lp_qkernels_default()->name);

    lp_ctx *ctx;
    if (lp_ctx_init(m, WARMUP + TIMED, 1, &ctx) != LP_OK) die("lp_ctx_init");
    float *logits = malloc(VOCAB * sizeof *logits);
    size_t nbw = (1ull << 30) / 4;
    float *buf = malloc(nbw * 4);
    if (!logits || !buf) die("malloc");
    for (size_t i = 0; i < nbw; i++) buf[i] = (float)(i & 1023) * 1e-3f;

    printf("\ndecode, one token per lp_forward call (logits included) from an empty context: %d warm-up, median (best) of %d;\n"
           "read-bw b/a = read+sum of a 1 GiB buffer (median of 10) just before / after each thread count's\n"
           "tokens; %%read-bw = GB/s over their mean\n",
           WARMUP, TIMED);
    printf("%4s %3s %17s %9s %9s %8s %13s %9s\n", "W", "thr", "ms/token (best)", "tok/s", "GB/token", "GB/s",
           "read-bw b/a", "%read-bw");
    for (int ti = 0; ti < nth; ti++) {
        omp_set_num_threads(threads[ti]);
        openblas_set_num_threads(threads[ti]);
        double rbw = read_bw(buf, nbw, 10);
        lp_ctx_reset(ctx);
        double t[TIMED];
        for (int i = 0; i < WARMUP + TIMED; i++) {
            int32_t tok = (int32_t)(rnd() % VOCAB);
            double s = omp_get_wtime();
            if (lp_forward(ctx, &tok, 1, logits, false) != LP_OK) die("lp_forward");
            if (i >= WARMUP) t[i - WARMUP] = omp_get_wtime() - s;
        }
        double rbw2 = read_bw(buf, nbw, 10), rbm = 0.5 * (rbw + rbw2);
        double tm = median(t, TIMED), gbs = (double)bytes / tm / 1e9; /* median sorts t: t[0] is the best */
        printf("%4d %3d %9.1f (%5.1f) %9.2f %9.3f %8.2f %6.1f /%5.1f %8.0f%%\n", bits, threads[ti], tm * 1e3,
               t[0] * 1e3, 1.0 / tm, (double)bytes / 1e9, gbs, rbw, rbw2, 100 * gbs / rbm);
        fflush(stdout);
    }
    print_load("at end");
    free(buf);
    free(logits);
    lp_ctx_free(ctx);
    lp_model_free(m);
    return 0;
}
