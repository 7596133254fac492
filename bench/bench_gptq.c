/*
 * bench_gptq.c - time of GPTQ on the linear shapes of a 7B Llama layer
 * (q/k/v/o: 4096 x 4096, gate/up: 11008 x 4096, down: 4096 x 11008; out x
 * in), split into the factorization (damping, Cholesky, inverse) and the
 * blocked quantization loop. Synthetic data: W ~ N(0, 0.02^2), and H =
 * 2 X^T X / T from T = 2048 random correlated tokens (ssyrk, not timed).
 * Also prints the H-weighted error relative to RTN's on the same format.
 *
 * usage: bench_gptq [threads=2] [bits=4] [group=128] [act_order=0] [shapes=all|small]
 */
#include "quant/gptq.h"
#include "format/qgroup.h"
#include "quant/rtn.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static float randn(uint64_t *s) {
    double u1 = ((rng(s) >> 11) + 1.0) / 9007199254740993.0, u2 = (rng(s) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* tr((W - Q) H (W - Q)^T) for D = W - Q (R x C): sum of D .* (D H). */
static double h_error(const float *D, const float *H, int64_t R, int64_t C, float *tmp) {
    cblas_ssymm(CblasRowMajor, CblasRight, CblasUpper, (int)R, (int)C, 1.0f, H, (int)C, D, (int)C,
                0.0f, tmp, (int)C);
    double e = 0.0;
    for (int64_t i = 0; i < R * C; i++) e += (double)D[i] * tmp[i];
    return e;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, bits = argc > 2 ? atoi(argv[2]) : 4;
    int group = argc > 3 ? atoi(argv[3]) : 128, act_order = argc > 4 ? atoi(argv[4]) : 0;
    int small = argc > 5 && strcmp(argv[5], "small") == 0;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    const int64_t shapes[3][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
    const int64_t T = 2048;
    printf("GPTQ w%d g%d %s act_order=%d, %d threads, H from %lld tokens\n", bits, group,
           "asym", act_order, threads, (long long)T);
    printf("%-14s %10s %10s %10s %12s\n", "shape (RxC)", "factor s", "loop s", "total s",
           "err/RTN err");
    for (int k = 0; k < (small ? 1 : 3); k++) {
        int64_t R = shapes[k][0], C = shapes[k][1];
        uint64_t s = 0x9E3779B97F4A7C15ull + (uint64_t)k;
        float *X = malloc((size_t)(T * C) * sizeof *X), *W = malloc((size_t)(R * C) * sizeof *W);
        float *H = malloc((size_t)(C * C) * sizeof *H), *Hw = malloc((size_t)(C * C) * sizeof *Hw);
        float *D = malloc((size_t)(R * C) * sizeof *D), *tmp = malloc((size_t)(R * C) * sizeof *tmp);
        if (!X || !W || !H || !Hw || !D || !tmp) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        /* tokens: neighbouring channels correlated, per-channel scales */
        float *sc = malloc((size_t)C * sizeof *sc);
        for (int64_t c = 0; c < C; c++) sc[c] = expf(0.5f * randn(&s));
        for (int64_t t = 0; t < T; t++) {
            float prev = 0.0f;
            for (int64_t c = 0; c < C; c++) {
                float z = randn(&s);
                X[t * C + c] = sc[c] * (z + 0.5f * prev);
                prev = z;
            }
        }
        for (int64_t i = 0; i < R * C; i++) W[i] = 0.02f * randn(&s);
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)C, (int)T, 2.0f / (float)T, X,
                    (int)C, 0.0f, H, (int)C);
        for (int64_t a = 0; a < C; a++) /* mirror: H is read as a full symmetric matrix */
            for (int64_t b = 0; b < a; b++) H[a * C + b] = H[b * C + a];
        memcpy(Hw, H, (size_t)(C * C) * sizeof *H);

        lp_qgroup q;
        lp_gptq_params p = lp_gptq_default_params();
        p.act_order = act_order;
        lp_gptq_stats st;
        double t0 = now();
        if (lp_qgroup_init(&q, R, C, bits, group, 0) != LP_OK ||
            lp_gptq_quantize(W, Hw, &p, &q, &st) != LP_OK) {
            fprintf(stderr, "%s\n", lp_last_error());
            return 1;
        }
        double t1 = now();
        lp_qgroup_dequant(&q, 0, R, D);
        for (int64_t i = 0; i < R * C; i++) D[i] = W[i] - D[i];
        double eg = h_error(D, H, R, C, tmp);
        lp_rtn_quantize(W, &q);
        lp_qgroup_dequant(&q, 0, R, D);
        for (int64_t i = 0; i < R * C; i++) D[i] = W[i] - D[i];
        double er = h_error(D, H, R, C, tmp);
        char name[32];
        snprintf(name, sizeof name, "%lldx%lld", (long long)R, (long long)C);
        printf("%-14s %10.2f %10.2f %10.2f %12.3f\n", name, st.t_factor, st.t_loop, t1 - t0,
               eg / er);
        fflush(stdout);
        lp_qgroup_free(&q);
        free(X); free(W); free(H); free(Hw); free(D); free(tmp); free(sc);
    }
    return 0;
}
