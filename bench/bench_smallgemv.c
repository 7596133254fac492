/*
 * bench_smallgemv.c - one-token packed products of a small model's shapes,
 * where fixed costs per call and per row weigh as much as the weights.
 *
 * Protocol: the linears of llama-25m (hidden 384, 1024 intermediate, 128-wide
 * k/v projections) in W4 g128 asym and its 32000 x 384 head in W8 g128, then
 * 4096 x 4096 W4 and W3 for scale; random codes, scales and zeros. Each
 * weight stays in cache between calls (unlike bench_qgemv, which measures
 * DRAM): this is the decode step of a model that fits in L2/L3. Per shape,
 * through the public entry points (so x's preparation is counted): the f32
 * product lp_qgroup_gemm with T = 1 and the q8 one lp_qgroup_gemv_q8; the
 * median of 15 batches of calls summing to >= 0.2 G weights each, one thread
 * (run it with OMP_NUM_THREADS=1 to keep it so). Then the same for ggml
 * parts as GGUF files hold them (llama.cpp's mix for llama-25m: the head in
 * Q8_0, 384-column layers in Q4_0 or Q5_0, K types where the columns allow,
 * and the other types at those shapes and at 4096 x 4096), through the ggml
 * format's product at this CPU's kernel level (f32 activations) and through
 * lp_ggml_gemv_q8 (8-bit activations, format/ggml_q8.h).
 *
 * Usage: bench_smallgemv [f32|q8]   (default both; one of them: only its rows)
 */
#include "bench_common.h"
#include "core/cpu.h"
#include "format/ggml.h"
#include "format/ggml_q8.h"
#include "format/qgroup.h"
#include "format/qgroup_q8.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int rows, cols, bits; /* bits: the ggml type in the ggml table */
    const char *what;
} shape;

static double time_one(const lp_qgroup *w, const float *x, float *y, int q8) {
    const int n = (int)(2e8 / ((double)w->rows * (double)w->cols)) + 1;
    double t[15];
    for (int k = 0; k < 15; k++) {
        const double t0 = omp_get_wtime();
        for (int i = 0; i < n; i++) {
            const lp_status st = q8 ? lp_qgroup_gemv_q8(w, x, y) : lp_qgroup_gemm(w, x, 1, y);
            if (st != LP_OK) {
                fprintf(stderr, "bench_smallgemv: %s\n", lp_last_error());
                exit(1);
            }
        }
        t[k] = (omp_get_wtime() - t0) / n;
    }
    return median(t, 15);
}

int main(int argc, char **argv) {
    const shape shapes[] = {{384, 384, 4, "q/o proj"},     {128, 384, 4, "k/v proj"},  {1024, 384, 4, "gate/up"},
                            {384, 1024, 4, "down"},         {32000, 384, 8, "head"},    {4096, 4096, 4, "7B attn"},
                            {4096, 4096, 3, "7B attn W3"}};
    const int only_f32 = argc > 1 && !strcmp(argv[1], "f32"), only_q8 = argc > 1 && !strcmp(argv[1], "q8");
    printf("%-12s %6s %6s %2s  %-4s %10s %8s\n", "layer", "rows", "cols", "W", "act", "us/call", "G w/s");
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const shape *sh = &shapes[si];
        lp_qgroup w;
        if (lp_qgroup_init(&w, sh->rows, sh->cols, sh->bits, 128, 0) != LP_OK) {
            fprintf(stderr, "bench_smallgemv: %s\n", lp_last_error());
            return 1;
        }
        for (int64_t i = 0; i < (int64_t)sh->rows * w.blocks * sh->bits; i++) w.q[i] = (uint32_t)rnd();
        for (int64_t i = 0; i < (int64_t)sh->rows * w.ngroups; i++) {
            w.scales[i] = (uint16_t)(0x1c00 + rnd() % 0x800);
            w.zeros[i] = (uint8_t)(rnd() % (1u << sh->bits));
        }
        float *x = malloc((size_t)sh->cols * sizeof(float)), *y = malloc((size_t)sh->rows * sizeof(float));
        for (int i = 0; i < sh->cols; i++) x[i] = (float)(2.0 * unif() - 1.0);
        for (int q8 = 0; q8 < 2; q8++) {
            if ((q8 && only_f32) || (!q8 && only_q8) || (q8 && !lp_qgroup_q8_supported(&w))) continue;
            const double s = time_one(&w, x, y, q8);
            printf("%-12s %6d %6d %2d  %-4s %10.2f %8.1f\n", sh->what, sh->rows, sh->cols, sh->bits, q8 ? "q8" : "f32",
                   s * 1e6, (double)sh->rows * sh->cols / s / 1e9);
        }
        lp_qgroup_free(&w);
        free(x);
        free(y);
    }
    const shape gshapes[] = {{32000, 384, LP_GGML_Q8_0, "head"},     {1024, 384, LP_GGML_Q4_0, "gate/up"},
                             {384, 1024, LP_GGML_Q4_0, "down"},       {1024, 384, LP_GGML_Q5_0, "gate/up"},
                             {1024, 384, LP_GGML_Q4_1, "gate/up"},    {1024, 384, LP_GGML_Q5_1, "gate/up"},
                             {1024, 384, LP_GGML_IQ4_NL, "gate/up"},  {1024, 512, LP_GGML_Q4_K, "(512 cols)"},
                             {1024, 512, LP_GGML_Q6_K, "(512 cols)"}, {4096, 4096, LP_GGML_Q2_K, "7B attn"},
                             {4096, 4096, LP_GGML_Q3_K, "7B attn"},   {4096, 4096, LP_GGML_Q4_K, "7B attn"},
                             {4096, 4096, LP_GGML_Q5_K, "7B attn"},   {4096, 4096, LP_GGML_Q6_K, "7B attn"}};
    const lp_gemm_fn gemm = lp_format_gemm(&lp_format_ggml, lp_cpu_isa());
    printf("\n%-12s %6s %6s %-6s %-4s %10s %8s\n", "ggml", "rows", "cols", "type", "act", "us/call", "G w/s");
    for (size_t si = 0; si < sizeof gshapes / sizeof gshapes[0]; si++) {
        const shape *sh = &gshapes[si];
        const int64_t n = (int64_t)sh->rows * sh->cols;
        float *W = malloc((size_t)n * sizeof(float)), *x = malloc((size_t)sh->cols * sizeof(float));
        float *y = malloc((size_t)sh->rows * sizeof(float));
        for (int64_t i = 0; i < n; i++) W[i] = (float)(0.04 * unif() - 0.02);
        for (int i = 0; i < sh->cols; i++) x[i] = (float)(2.0 * unif() - 1.0);
        lp_ggml_part *p = NULL;
        if (lp_ggml_part_quantize(sh->bits, W, NULL, sh->rows, sh->cols, &p) != LP_OK) die("bench_smallgemv");
        const int reps = (int)(2e8 / (double)n) + 1;
        for (int q8 = 0; q8 < 2; q8++) {
            if ((q8 && only_f32) || (!q8 && only_q8) || (q8 && !lp_ggml_q8_supported(p))) continue;
            double t[15];
            for (int k = 0; k < 15; k++) {
                const double t0 = omp_get_wtime();
                for (int i = 0; i < reps; i++)
                    if ((q8 ? lp_ggml_gemv_q8(p, x, y) : gemm(p, x, 1, y)) != LP_OK) die("bench_smallgemv");
                t[k] = (omp_get_wtime() - t0) / reps;
            }
            const double s = median(t, 15);
            printf("%-12s %6d %6d %-6s %-4s %10.2f %8.1f\n", sh->what, sh->rows, sh->cols,
                   lp_ggml_type_of(sh->bits).name, q8 ? "q8" : "f32", s * 1e6, (double)n / s / 1e9);
        }
        lp_ggml_part_free(p);
        free(W), free(x), free(y);
    }
    return 0;
}
