/*
 * cmd_bench.c - `llmpress bench`: llama-bench's two figures for any model we
 * read: prefill tokens/s of a P-token prompt (pp) and decode tokens/s of N
 * generated tokens (tg), the median of --reps runs, and the peak resident
 * memory. The measurement is the library's (lp_speed_measure, eval/speed.c);
 * this file parses flags and prints.
 */
#include "cli.h"

#include <omp.h>
#include <string.h>

static const char *const HELP =
    "usage: llmpress bench MODEL [-p 512] [-n 128] [-d 0] [--reps 3] [--threads N] [--act f32|q8|q8-all] [--json]\n"
    "\n"
    "Prefill and decode speed of MODEL (original or compressed), as llama-bench's pp/tg:\n"
    "  -p, --prompt N   prefill a prompt of N tokens in one call (default 512)\n"
    "  -n, --gen N      generate N tokens, one per call, greedy (default 128)\n"
    "  -d, --depth N    run both with N tokens already in the context (default 0: empty,\n"
    "                   as llama-bench)\n"
    "  --reps N         median of N runs (default 3)\n"
    "  --threads N      threads for BLAS and kernels (default: all cores)\n"
    "  --act q8         decode with 8-bit activations where a format has that product (grouped\n"
    "                   integers at 2/3/4/8 bits, every quantized GGUF type; AVX-512 VNNI), as\n"
    "                   llama.cpp does; default f32, the reference (LP_ACT=q8 sets it for every\n"
    "                   command)\n"
    "  --act q8-all     prefill with 8-bit activations too (LP_ACT=q8-all)\n"
    "  --json           one JSON object: prefill_tok_s, decode_tok_s, threads, peak_rss_bytes, ...\n"
    "\n"
    "example: llmpress bench llama-25m-w4 -p 512 -n 128 --threads 1\n";

int cmd_bench(int argc, char **argv) {
    cli_args a = {argc, 1, argv, "bench"};
    const char *dir = NULL;
    int64_t P = 512, N = 128, depth = 0, reps = 3, threads = 0;
    bool json = false;
    for (; a.i < argc; a.i++) {
        const char *f = argv[a.i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            fputs(HELP, stdout);
            return 0;
        } else if (!strcmp(f, "-p") || !strcmp(f, "--prompt")) {
            if (!cli_parse_i64(&a, cli_value(&a), 1, 1 << 20, &P)) return 2;
        } else if (!strcmp(f, "-n") || !strcmp(f, "--gen")) {
            if (!cli_parse_i64(&a, cli_value(&a), 0, 1 << 20, &N)) return 2;
        } else if (!strcmp(f, "-d") || !strcmp(f, "--depth")) {
            if (!cli_parse_i64(&a, cli_value(&a), 0, 1 << 20, &depth)) return 2;
        } else if (!strcmp(f, "--reps")) {
            if (!cli_parse_i64(&a, cli_value(&a), 1, 100, &reps)) return 2;
        } else if (!strcmp(f, "--threads") || !strcmp(f, "-t")) {
            if (!cli_parse_i64(&a, cli_value(&a), 1, 1024, &threads)) return 2;
        } else if (!strcmp(f, "--act")) {
            const char *v = cli_value(&a);
            if (!v) return 2;
            lp_act act;
            if (!lp_act_from_name(v, &act)) return cli_usage_error(&a, "--act expects f32, q8 or q8-all, got '%s'", v);
            lp_set_activations(act);
        } else if (!strcmp(f, "--json")) {
            json = true;
        } else if (f[0] == '-') {
            return cli_usage_error(&a, "unknown flag '%s'", f);
        } else if (!dir) {
            dir = f;
        } else {
            return cli_usage_error(&a, "unexpected argument '%s'", f);
        }
    }
    if (!dir) return cli_usage_error(&a, "no MODEL directory given");
    cli_set_threads((int)threads);
    lp_model *m = NULL;
    if (lp_model_load(dir, &m) != LP_OK) return cli_lib_error("bench", NULL);
    const lp_config *c = lp_model_config(m);
    if (depth + (P > N ? P : N) > c->max_pos) {
        fprintf(stderr, "llmpress bench: -d %lld plus -p %lld or -n %lld exceed %s's %lld positions "
                "(max_position_embeddings)\n", (long long)depth, (long long)P, (long long)N, dir,
                (long long)c->max_pos);
        lp_model_free(m);
        return 2;
    }
    lp_speed_result r;
    if (lp_speed_measure(m, NULL, P, N, depth, (int)reps, &r) != LP_OK) {
        lp_model_free(m);
        return cli_lib_error("bench", NULL);
    }
    lp_model_size sz;
    lp_model_size_get(m, &sz);
    const int64_t rss = lp_peak_rss_bytes();
    const int nth = omp_get_max_threads();
    if (json) {
        printf("{\"model\": ");
        cli_json_string(stdout, dir);
        printf(", \"prompt_tokens\": %lld, \"gen_tokens\": %lld, \"depth\": %lld, \"reps\": %lld, \"threads\": %d, "
               "\"act\": \"%s\", \"prefill_tok_s\": %.2f, \"decode_tok_s\": %.2f, \"peak_rss_bytes\": %lld, \"total_bytes\": %lld}\n",
               (long long)P, (long long)N, (long long)depth, (long long)reps, nth, lp_act_name(lp_activations()), r.prefill_tok_s, r.decode_tok_s, (long long)rss,
               (long long)sz.total_bytes);
    } else {
        printf("%s: %s\n", dir, sz.formats);
        printf("  pp%-5lld %10.1f tokens/s\n", (long long)P, r.prefill_tok_s);
        if (N) printf("  tg%-5lld %10.1f tokens/s\n", (long long)N, r.decode_tok_s);
        printf("  %d threads, median of %lld; peak resident %.1f MB, weights %.1f MB\n", nth, (long long)reps,
               (double)rss / 1e6, (double)sz.total_bytes / 1e6);
    }
    lp_model_free(m);
    return 0;
}
