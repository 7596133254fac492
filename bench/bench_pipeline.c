/*
 * bench_pipeline.c - time and memory of the calibrated GPTQ pipeline
 * (lp_model_quantize, GPTQ W4 g128 asym) on synthetic Llama checkpoints whose
 * blocks have real 7B / 1B / 25M shapes, as a function of hidden size and of
 * the calibration size N x L (sequences x tokens).
 *
 * What: writes a LlamaForCausalLM checkpoint (config.json + model.safetensors,
 *   bf16, W ~ N(0, 0.02^2), norm weights 1, vocab 512, tied embeddings,
 *   `layers` blocks, 1 by default) into a temporary directory (mkdtemp under
 *   $TMPDIR or /tmp, removed at exit), loads it with lp_model_load, draws
 *   N x L uniform random token ids, runs lp_model_quantize with p.stats and
 *   prints ONE markdown table row: the pipeline's phase times (lp_quant_stats),
 *   the achieved GFLOP/s of the forward and statistics phases, the pipeline's
 *   own activation + Hessian bytes (peak_activation_bytes), the process RSS
 *   with the loaded model and its peak during quantization, and the 1-minute
 *   load average before and after (the machine may be shared).
 * Why: a real 7B checkpoint does not fit the time budget of a bench, but one
 *   block of it does, and the pipeline works block by block: a full model
 *   costs n_layers x one block's time (plus the embedding) and the memory of
 *   one block's states, so one block of the real shape predicts the whole.
 * Design: one configuration per process, so that VmHWM is that row's peak;
 *   still, VmHWM is reset (/proc/self/clear_refs "5") after the checkpoint is
 *   written and loaded, so the peak column is the quantization's own (the
 *   loaded f32 model included, the generator's buffers not). Random weights
 *   and tokens cost the same flops as real ones: nothing in the pipeline
 *   depends on the values (no early exits), only on the shapes.
 *   Nominal flops (for the GFLOP/s columns; T = N L tokens, A = H hd):
 *     forward = T (2 P_block + attention), P_block = the 7 linears' weights,
 *       attention = H sum over 128-query chunks of 4 n lk hd per sequence,
 *       plus one more gate/up pass when Z (T F floats) exceeds 1 GiB;
 *     statistics = T (2 D^2 + A^2 + F^2)  (ssyrk: n^2 k each).
 *
 * usage: bench_pipeline --header
 *        bench_pipeline PRESET NSAMPLES SEQLEN [threads=2] [layers=1]
 *   PRESET: 7b (D 4096, F 11008, 32 heads, 32 kv heads, hd 128),
 *           1b (Llama-3.2-1B: D 2048, F 8192, 32 heads, 8 kv heads, hd 64),
 *           25m (llama-25m: D 384, F 1024, 6 heads, 2 kv heads, hd 64).
 *   A table, one fresh process per row (about 12 minutes on 2 busy cores):
 *     export OMP_WAIT_POLICY=PASSIVE; B=build/bench_pipeline; $B --header
 *     for c in "25m 128 512" "1b 16 512" "1b 16 2048" "7b 4 512" "7b 4 2048" "7b 16 512"
 *     do $B $c; done
 *   On a shared machine keep OMP_WAIT_POLICY=PASSIVE: with spinning OpenMP
 *   threads and other jobs on the cores, 2 threads ran 25m 16 x 128 in 9.3 s
 *   instead of 1.2 s. Progress (each linear, with the time since the start)
 *   goes to stderr. A 7b row needs about 4 GB of memory and 0.4 GB of disk.
 */
#include "core/half.h"
#include "io/safetensors.h"
#include "llmpress/model.h"
#include "llmpress/quant.h"

#include <cblas.h>
#include <dirent.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define VOCAB 512

typedef struct {
    const char *name;
    int64_t dim, ffn, n_heads, n_kv_heads, head_dim;
} preset;

static const preset presets[] = {
    {"7b", 4096, 11008, 32, 32, 128},
    {"1b", 2048, 8192, 32, 8, 64},
    {"25m", 384, 1024, 6, 2, 64},
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the temporary checkpoint directory, removed at exit or on a signal ---- */

/* A bench-only global: atexit and signal handlers take no arguments. */
static char tmp_dir[4096];

/* Remove every file in tmp_dir (the writer's temporary names included), then
 * the directory. Best effort from a signal handler (readdir is not
 * async-signal-safe, but the process is ending either way). */
static void remove_tmp_dir(void) {
    if (!tmp_dir[0]) return;
    DIR *d = opendir(tmp_dir);
    if (d) {
        struct dirent *e;
        char path[4096 + 512];
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(path, sizeof path, "%s/%s", tmp_dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(tmp_dir);
    tmp_dir[0] = '\0';
}

static void on_signal(int sig) {
    remove_tmp_dir();
    _exit(128 + sig);
}

/* ---- synthetic weights ---- */

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* n bf16 values ~ N(0, sd^2) (sd = 0 -> all ones), Box-Muller in chunks of
 * 2^20 seeded by (seed, chunk): the same bits for any thread count. */
static uint16_t *gen_bf16(int64_t n, float sd, uint64_t seed) {
    uint16_t *w = malloc((size_t)n * sizeof *w);
    if (!w) return NULL;
    const int64_t CH = (int64_t)1 << 20, nch = (n + CH - 1) / CH;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nch; c++) {
        uint64_t s = seed * 0x100000001B3ull + (uint64_t)c;
        splitmix(&s);
        const int64_t hi = (c + 1) * CH < n ? (c + 1) * CH : n;
        for (int64_t i = c * CH; i < hi; i += 2) {
            if (sd == 0.0f) {
                w[i] = lp_f32_to_bf16(1.0f);
                if (i + 1 < hi) w[i + 1] = w[i];
                continue;
            }
            double u1 = ((splitmix(&s) >> 11) + 1.0) / 9007199254740993.0;
            double u2 = (splitmix(&s) >> 11) / 9007199254740992.0, r = sqrt(-2.0 * log(u1));
            w[i] = lp_f32_to_bf16(sd * (float)(r * cos(6.283185307179586 * u2)));
            if (i + 1 < hi) w[i + 1] = lp_f32_to_bf16(sd * (float)(r * sin(6.283185307179586 * u2)));
        }
    }
    return w;
}

/* config.json + model.safetensors for preset P with `layers` blocks and a
 * context of max_pos positions into dir. Weights are row-major out x in. */
static int write_checkpoint(const char *dir, const preset *P, int64_t layers, int64_t max_pos) {
    char path[4096 + 64];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "%s: cannot create\n", path);
        return 1;
    }
    fprintf(f,
            "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\",\n"
            " \"hidden_size\": %lld, \"intermediate_size\": %lld, \"num_hidden_layers\": %lld,\n"
            " \"num_attention_heads\": %lld, \"num_key_value_heads\": %lld, \"head_dim\": %lld,\n"
            " \"vocab_size\": %d, \"max_position_embeddings\": %lld, \"rms_norm_eps\": 1e-05,\n"
            " \"rope_theta\": 10000.0, \"hidden_act\": \"silu\", \"tie_word_embeddings\": true,\n"
            " \"attention_bias\": false, \"mlp_bias\": false, \"bos_token_id\": 1, \"eos_token_id\": 2,\n"
            " \"torch_dtype\": \"bfloat16\"}\n",
            (long long)P->dim, (long long)P->ffn, (long long)layers, (long long)P->n_heads,
            (long long)P->n_kv_heads, (long long)P->head_dim, VOCAB, (long long)max_pos);
    if (fclose(f) != 0) {
        fprintf(stderr, "%s: write failed\n", path);
        return 1;
    }

    const int64_t D = P->dim, F = P->ffn, A = P->n_heads * P->head_dim, KVd = P->n_kv_heads * P->head_dim;
    /* name suffix, rows (out), cols (in; 0 = a vector of `rows`), sd (0 = ones) */
    const struct { const char *sfx; int64_t rows, cols; float sd; } per_layer[] = {
        {"input_layernorm.weight", D, 0, 0.0f},  {"post_attention_layernorm.weight", D, 0, 0.0f},
        {"self_attn.q_proj.weight", A, D, 0.02f}, {"self_attn.k_proj.weight", KVd, D, 0.02f},
        {"self_attn.v_proj.weight", KVd, D, 0.02f}, {"self_attn.o_proj.weight", D, A, 0.02f},
        {"mlp.gate_proj.weight", F, D, 0.02f},   {"mlp.up_proj.weight", F, D, 0.02f},
        {"mlp.down_proj.weight", D, F, 0.02f},
    };
    enum { NPL = sizeof per_layer / sizeof per_layer[0] };
    const int64_t ntensors = 2 + layers * NPL;
    uint16_t **bufs = calloc((size_t)ntensors, sizeof *bufs);
    lp_st_writer *w = NULL;
    int rc = 1;
    if (!bufs || lp_st_writer_init(&w) != LP_OK) goto out;
    int64_t k = 0;
    const int64_t emb_shape[2] = {VOCAB, D};
    if (!(bufs[k] = gen_bf16(VOCAB * D, 0.02f, (uint64_t)k + 1)) ||
        lp_st_writer_add(w, "model.embed_tokens.weight", LP_DT_BF16, 2, emb_shape, bufs[k]) != LP_OK)
        goto out;
    k++;
    if (!(bufs[k] = gen_bf16(D, 0.0f, 0)) ||
        lp_st_writer_add(w, "model.norm.weight", LP_DT_BF16, 1, &D, bufs[k]) != LP_OK)
        goto out;
    k++;
    for (int64_t l = 0; l < layers; l++) {
        for (int j = 0; j < NPL; j++, k++) {
            char name[256];
            snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)l, per_layer[j].sfx);
            const int64_t shape[2] = {per_layer[j].rows, per_layer[j].cols};
            const int ndim = per_layer[j].cols ? 2 : 1;
            const int64_t n = per_layer[j].rows * (per_layer[j].cols ? per_layer[j].cols : 1);
            if (!(bufs[k] = gen_bf16(n, per_layer[j].sd, (uint64_t)k + 1)) ||
                lp_st_writer_add(w, name, LP_DT_BF16, ndim, shape, bufs[k]) != LP_OK)
                goto out;
        }
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (lp_st_writer_save(w, path) != LP_OK) goto out;
    rc = 0;
out:
    if (rc) fprintf(stderr, "writing the checkpoint: %s\n", lp_last_error()[0] ? lp_last_error() : "out of memory");
    lp_st_writer_free(w);
    for (int64_t i = 0; bufs && i < ntensors; i++) free(bufs[i]);
    free(bufs);
    return rc;
}

/* ---- measuring ---- */

/* A "VmRSS:" / "VmHWM:" line of /proc/self/status in MB (-1 if unreadable). */
static double status_mb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    double mb = -1;
    const size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n)) {
            mb = atof(line + n) / 1024.0; /* kB */
            break;
        }
    fclose(f);
    return mb;
}

/* Reset VmHWM to the current RSS (Linux >= 4.0); false if not possible. */
static int reset_hwm(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return 0;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

static double loadavg1(void) {
    FILE *f = fopen("/proc/loadavg", "r");
    double l = -1;
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

typedef struct {
    double t0;
} progress_ud;

static void on_progress(void *ud, int64_t layer, int64_t n_layers, const char *linear, double rel_err) {
    const progress_ud *u = ud;
    fprintf(stderr, "  [%7.1f s] block %lld/%lld %-5s rel err %.4f\n", now() - u->t0, (long long)layer + 1,
            (long long)n_layers, linear, rel_err);
}

static void print_header(void) {
    printf("| preset | D | F | N x L | thr | total s | forward | statistics | factorization | "
           "quant loop | other | fwd GFLOP/s | stats GFLOP/s | activations MB | RSS model MB | "
           "peak RSS MB | load before/after |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--header")) {
        print_header();
        return 0;
    }
    const preset *P = NULL;
    for (size_t i = 0; argc > 1 && i < sizeof presets / sizeof presets[0]; i++)
        if (!strcmp(argv[1], presets[i].name)) P = &presets[i];
    const int64_t N = argc > 2 ? atoll(argv[2]) : 0, L = argc > 3 ? atoll(argv[3]) : 0;
    const int threads = argc > 4 ? atoi(argv[4]) : 2;
    const int64_t layers = argc > 5 ? atoll(argv[5]) : 1;
    if (!P || N <= 0 || L <= 0 || threads <= 0 || layers <= 0) {
        fprintf(stderr,
                "usage: %s --header\n"
                "       %s PRESET NSAMPLES SEQLEN [threads=2] [layers=1]\n"
                "  PRESET: 7b (D 4096, F 11008), 1b (D 2048, F 8192), 25m (D 384, F 1024)\n"
                "  e.g.   for c in \"25m 128 512\" \"7b 4 512\"; do %s $c; done\n",
                argv[0], argv[0], argv[0]);
        return 2;
    }
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    const double load_before = loadavg1();

    /* 1. the checkpoint */
    const char *tmp = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/lp_bench_pipeline.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        fprintf(stderr, "mkdtemp %s failed\n", tmp_dir);
        return 1;
    }
    atexit(remove_tmp_dir);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    double t0 = now();
    if (write_checkpoint(tmp_dir, P, layers, L > 2048 ? L : 2048)) return 1;
    const double t_write = now() - t0;

    /* 2. load (dense weights become f32 in memory) */
    t0 = now();
    lp_model *m = NULL;
    if (lp_model_load(tmp_dir, &m) != LP_OK) {
        fprintf(stderr, "%s\n", lp_last_error());
        return 1;
    }
    const double t_load = now() - t0;

    /* 3. calibration: N windows of L uniform random token ids */
    int32_t *tok = malloc((size_t)(N * L) * sizeof *tok);
    if (!tok) {
        fprintf(stderr, "out of memory for %lld x %lld tokens\n", (long long)N, (long long)L);
        return 1;
    }
    uint64_t s = 42;
    for (int64_t i = 0; i < N * L; i++) tok[i] = (int32_t)(splitmix(&s) % VOCAB);
    const lp_calib cal = {.tokens = tok, .nsamples = N, .seqlen = L};

    /* 4. GPTQ W4 g128 asym, the pipeline's defaults otherwise */
    lp_quant_stats st = {0};
    progress_ud pu = {.t0 = now()};
    lp_settings *gptq = NULL;
    if (lp_settings_parse("gptq bits=4 group=128", &gptq) != LP_OK) {
        fprintf(stderr, "%s\n", lp_last_error());
        return 1;
    }
    lp_quant_params p = {.method = gptq, .calib = &cal, .stats = &st, .progress = on_progress, .progress_ud = &pu};
    const double rss_model = status_mb("VmRSS:");
    const int hwm_ok = reset_hwm();
    fprintf(stderr, "%s x %lld blocks: checkpoint written in %.1f s, loaded in %.1f s, RSS %.0f MB; "
            "GPTQ W4 g128 on %lld x %lld tokens, %d threads\n", P->name, (long long)layers, t_write, t_load,
            rss_model, (long long)N, (long long)L, threads);
    if (lp_model_quantize(m, &p) != LP_OK) {
        fprintf(stderr, "%s\n", lp_last_error());
        return 1;
    }
    const double rss_peak = hwm_ok ? status_mb("VmHWM:") : -1;
    lp_model_size sz;
    lp_model_size_get(m, &sz);
    if (sz.n_compressed != 7 * layers) {
        fprintf(stderr, "only %d of %lld linears were compressed (%s)\n", sz.n_compressed,
                (long long)(7 * layers), sz.formats);
        return 1;
    }

    /* nominal flops, per the header */
    const lp_config *c = lp_model_config(m);
    const int64_t D = c->dim, F = c->ffn, hd = c->head_dim, A = c->n_heads * hd, KVd = c->n_kv_heads * hd;
    const double T = (double)(N * L), p_block = (double)(A * D + 2 * KVd * D + D * A + 3 * F * D);
    double att = 0; /* per sequence, all heads */
    for (int64_t q0 = 0; q0 < L; q0 += 128) {
        const int64_t n = L - q0 < 128 ? L - q0 : 128;
        att += 4.0 * (double)n * (double)(q0 + n) * (double)hd * (double)c->n_heads;
    }
    const bool keep_z = (double)N * L * F * 4.0 <= (double)(1 << 30);
    const double fl_fwd = (double)layers * (T * 2.0 * p_block + (double)N * att + (keep_z ? 0 : T * 4.0 * D * F));
    const double fl_stats = (double)layers * T * (2.0 * D * D + (double)A * A + (double)F * F);
    const double other = st.total - st.forward - st.stats - st.factorize - st.quantize;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(stderr, "process ru_maxrss %.0f MB (whole run, generator included)%s\n", ru.ru_maxrss / 1024.0,
            hwm_ok ? "" : "; /proc/self/clear_refs not writable: peak RSS not measured");

    char nl[64], lay[32] = "";
    snprintf(nl, sizeof nl, "%lld x %lld", (long long)N, (long long)L);
    if (layers > 1) snprintf(lay, sizeof lay, " x%lld", (long long)layers);
    printf("| %s%s | %lld | %lld | %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f | %.0f | "
           "%.0f | %.0f | %.1f / %.1f |\n",
           P->name, lay, (long long)D, (long long)F, nl, threads, st.total, st.forward, st.stats, st.factorize,
           st.quantize, other, fl_fwd / st.forward * 1e-9, fl_stats / st.stats * 1e-9,
           st.peak_activation_bytes / 1048576.0, rss_model, rss_peak, load_before, loadavg1());
    fflush(stdout);
    lp_model_free(m);
    lp_settings_free(gptq);
    free(tok);
    return 0;
}
