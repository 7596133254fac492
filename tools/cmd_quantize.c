/*
 * cmd_quantize.c - `llmpress quantize`: compress a checkpoint and save it.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *const HELP =
    "usage: llmpress quantize MODEL --method rtn --bits B --group G [--sym] -o OUT\n"
    "\n"
    "Quantize the decoder linears (q,k,v,o,gate,up,down) of MODEL and write a\n"
    "compressed checkpoint directory OUT that `eval`, `run` and `info` read directly.\n"
    "  --method M      rtn (round to nearest, min-max per group)\n"
    "  --bits B        bits per weight, 1..8 (default 4)\n"
    "  --group G       columns per scale: 32, 64, 128, ... or -1 per output channel (default 128)\n"
    "  --sym           symmetric quantization (default asymmetric, with zero points)\n"
    "  -o, --out DIR   output directory (created; files in it are replaced atomically)\n"
    "  --threads N     threads (default: all cores)\n"
    "  --json          print a JSON summary on stdout\n"
    "  --quiet         no progress on stderr\n"
    "\n"
    "example: llmpress quantize ../shared/assets/models/llama-25m --method rtn --bits 4 --group 128 -o llama-25m-w4\n";

typedef struct {
    bool quiet;
    double t0;
} qstate;

static void on_linear(void *ud, int64_t layer, int64_t n_layers, const char *name, double err) {
    qstate *s = ud;
    if (s->quiet) return;
    fprintf(stderr, "[quantize] layer %lld/%lld %-18s rel. error %.5f  (%.1fs)\n", (long long)layer + 1,
            (long long)n_layers, name, err, cli_now() - s->t0);
}

int cmd_quantize(int argc, char **argv) {
    cli_args a = {argc, 1, argv, "quantize"};
    const char *model_dir = NULL, *out = NULL;
    lp_quant_params qp = lp_quant_default_params();
    int64_t threads = 0, v;
    bool json = false, quiet = false;
    for (; a.i < argc; a.i++) {
        const char *f = argv[a.i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            fputs(HELP, stdout);
            return 0;
        } else if (!strcmp(f, "--method")) {
            const char *s = cli_value(&a);
            if (!s) return 2;
            if (strcmp(s, "rtn"))
                return cli_usage_error(&a, "--method '%s' is not available (available: rtn)", s);
            qp.method = LP_METHOD_RTN;
        } else if (!strcmp(f, "--bits")) {
            if (!cli_parse_i64(&a, cli_value(&a), 1, 8, &v)) return 2;
            qp.bits = (int)v;
        } else if (!strcmp(f, "--group")) {
            if (!cli_parse_i64(&a, cli_value(&a), -1, 1 << 30, &v)) return 2;
            qp.group = (int)v;
        } else if (!strcmp(f, "--sym")) {
            qp.sym = true;
        } else if (!strcmp(f, "-o") || !strcmp(f, "--out")) {
            if (!(out = cli_value(&a))) return 2;
        } else if (!strcmp(f, "--threads")) {
            if (!cli_parse_i64(&a, cli_value(&a), 1, 1024, &threads)) return 2;
        } else if (!strcmp(f, "--json")) {
            json = true;
        } else if (!strcmp(f, "--quiet") || !strcmp(f, "-q")) {
            quiet = true;
        } else if (f[0] == '-') {
            return cli_usage_error(&a, "unknown flag '%s'", f);
        } else if (!model_dir) {
            model_dir = f;
        } else {
            return cli_usage_error(&a, "unexpected argument '%s'", f);
        }
    }
    if (!model_dir) return cli_usage_error(&a, "no MODEL directory given");
    if (!out) return cli_usage_error(&a, "no output directory: give -o OUT");
    if (lp_quant_params_check(&qp) != LP_OK) return cli_usage_error(&a, "%s", lp_last_error());
    cli_set_threads((int)threads);

    lp_model *m = NULL;
    if (lp_model_load(model_dir, &m) != LP_OK) return cli_lib_error("quantize", NULL);
    if (lp_model_save_check(m, out) != LP_OK) {
        lp_model_free(m);
        return cli_lib_error("quantize", NULL);
    }
    qstate qs = {quiet || json, cli_now()};
    qp.progress = on_linear;
    qp.progress_ud = &qs;
    double t0 = cli_now();
    if (lp_model_quantize(m, &qp) != LP_OK) {
        lp_model_free(m);
        return cli_lib_error("quantize", NULL);
    }
    double tq = cli_now() - t0;
    if (lp_model_save(m, out) != LP_OK) {
        lp_model_free(m);
        return cli_lib_error("quantize", "saving");
    }
    lp_model_size sz;
    lp_model_size_get(m, &sz);
    double bpw = 8.0 * (double)sz.linear_bytes / (double)sz.linear_params;
    if (json) {
        printf("{\"model\": ");
        cli_json_string(stdout, model_dir);
        printf(", \"out\": ");
        cli_json_string(stdout, out);
        printf(", \"method\": \"rtn\", \"bits\": %d, \"group\": %d, \"sym\": %s, \"seconds\": %.3f, "
               "\"linear_bits_per_weight\": %.4f, \"linear_bytes\": %lld, \"total_bytes\": %lld}\n",
               qp.bits, qp.group, qp.sym ? "true" : "false", tq, bpw, (long long)sz.linear_bytes,
               (long long)sz.total_bytes);
    } else {
        printf("wrote %s: %s, %.4f bits per weight in the decoder linears, %.2f MB in all (%.1f s)\n",
               out, sz.formats, bpw, (double)sz.total_bytes / 1e6, tq);
    }
    lp_model_free(m);
    return 0;
}
