/*
 * cmd_quantize.c - `llmpress quantize`: compress a checkpoint and save it.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *const HELP =
    "usage: llmpress quantize MODEL --method rtn|gptq|awq --bits B --group G [--sym] [--calib FILE] -o OUT\n"
    "\n"
    "Quantize the decoder linears (q,k,v,o,gate,up,down) of MODEL and write a\n"
    "compressed checkpoint directory OUT that `eval`, `run` and `info` read directly.\n"
    "  --method M      rtn (round to nearest, min-max per group) or\n"
    "                  gptq (Hessian-guided error feedback, block by block; needs --calib) or\n"
    "                  awq (activation-aware channel scales and clipping; needs --calib)\n"
    "  --bits B        bits per weight, 1..8 (default 4)\n"
    "  --group G       columns per scale: 32, 64, 128, ... or -1 per output channel (default 128)\n"
    "  --sym           symmetric quantization (default asymmetric, with zero points)\n"
    "  -o, --out DIR   output directory (created; files in it are replaced atomically)\n"
    "calibration (gptq, awq):\n"
    "  --calib FILE    calibration text\n"
    "  --nsamples N    windows drawn at random offsets (default 128)\n"
    "  --seqlen L      tokens per window (default 512)\n"
    "  --seed S        seed for drawing the windows (default 0)\n"
    "  --act-order     quantize columns by decreasing Hessian diagonal (static groups)\n"
    "  --damp D        dampening, fraction of the mean Hessian diagonal (default 0.01)\n"
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

/* Tokenize the calibration text with the model's tokenizer and draw the
 * windows. Prints its own errors; returns 0 on success. */
static int load_calibration(const char *model_dir, const char *file, int64_t nsamples, int64_t seqlen,
                            uint64_t seed, int32_t **windows) {
    lp_tokenizer *tok = NULL;
    char *text = NULL;
    size_t len = 0;
    int32_t *ids = NULL;
    int64_t n = 0;
    int rc = 1;
    if (cli_load_tokenizer(model_dir, &tok) != LP_OK) {
        cli_lib_error("quantize", "loading the tokenizer");
    } else if (cli_read_text(file, &text, &len) != LP_OK) {
        cli_lib_error("quantize", NULL);
    } else if (lp_tokenizer_encode(tok, text, len, 0, &ids, &n) != LP_OK) {
        fprintf(stderr, "llmpress quantize: %s: %s\n", file, lp_last_error());
    } else if (lp_calib_sample(ids, n, nsamples, seqlen, seed, windows) != LP_OK) {
        fprintf(stderr, "llmpress quantize: %s: %s\n", file, lp_last_error());
    } else {
        rc = 0;
    }
    free(ids);
    free(text);
    lp_tokenizer_free(tok);
    return rc;
}

int cmd_quantize(int argc, char **argv) {
    cli_args a = {argc, 1, argv, "quantize"};
    const char *model_dir = NULL, *out = NULL, *calib_file = NULL;
    int64_t nsamples = 128, seqlen = 512, seed = 0;
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
            if (!strcmp(s, "rtn")) qp.method = LP_METHOD_RTN;
            else if (!strcmp(s, "gptq")) qp.method = LP_METHOD_GPTQ;
            else if (!strcmp(s, "awq")) qp.method = LP_METHOD_AWQ;
            else return cli_usage_error(&a, "--method '%s' is not available (available: rtn, gptq, awq)", s);
        } else if (!strcmp(f, "--calib")) {
            if (!(calib_file = cli_value(&a))) return 2;
        } else if (!strcmp(f, "--nsamples")) {
            if (!cli_parse_i64(&a, cli_value(&a), 1, 1 << 20, &nsamples)) return 2;
        } else if (!strcmp(f, "--seqlen")) {
            if (!cli_parse_i64(&a, cli_value(&a), 2, 1 << 20, &seqlen)) return 2;
        } else if (!strcmp(f, "--seed")) {
            if (!cli_parse_i64(&a, cli_value(&a), 0, INT64_MAX, &seed)) return 2;
        } else if (!strcmp(f, "--act-order")) {
            qp.act_order = true;
        } else if (!strcmp(f, "--damp")) {
            double d;
            if (!cli_parse_f64(&a, cli_value(&a), 1e-9, 0.999, &d)) return 2;
            qp.damp = d;
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
    if (qp.method == LP_METHOD_RTN && calib_file)
        return cli_usage_error(&a, "--calib is for calibrated methods; rtn uses no calibration data");
    if (qp.method != LP_METHOD_RTN && !calib_file)
        return cli_usage_error(&a, "--method %s needs calibration text: give --calib FILE",
                               qp.method == LP_METHOD_AWQ ? "awq" : "gptq");
    if (lp_quant_params_check(&qp) != LP_OK) return cli_usage_error(&a, "%s", lp_last_error());
    lp_calib cal = {NULL, nsamples, seqlen};
    qp.calib = calib_file ? &cal : NULL;
    cli_set_threads((int)threads);

    lp_model *m = NULL;
    int32_t *windows = NULL;
    lp_quant_stats stats = {0};
    qp.stats = &stats;
    if (lp_model_load(model_dir, &m) != LP_OK) return cli_lib_error("quantize", NULL);
    if (lp_model_save_check(m, out) != LP_OK) {
        lp_model_free(m);
        return cli_lib_error("quantize", NULL);
    }
    if (calib_file && load_calibration(model_dir, calib_file, nsamples, seqlen, (uint64_t)seed, &windows) != 0) {
        lp_model_free(m);
        return 1;
    }
    cal.tokens = windows;
    qstate qs = {quiet || json, cli_now()};
    qp.progress = on_linear;
    qp.progress_ud = &qs;
    double t0 = cli_now();
    lp_status qst = lp_model_quantize(m, &qp);
    free(windows);
    if (qst != LP_OK) {
        lp_model_free(m);
        return cli_lib_error("quantize", NULL);
    }
    double tq = cli_now() - t0;
    if (qp.method == LP_METHOD_AWQ && !(quiet || json))
        fprintf(stderr, "[quantize] %.1fs: forward %.1fs, statistics %.1fs, scale search %.1fs, clip search %.1fs, "
                "rounding %.1fs; calibration activations and statistics %.1f MB\n", stats.total, stats.forward,
                stats.stats, stats.scale_search, stats.clip_search, stats.quantize,
                (double)stats.peak_activation_bytes / 1e6);
    else if (qp.method != LP_METHOD_RTN && !(quiet || json))
        fprintf(stderr, "[quantize] %.1fs: forward %.1fs, statistics %.1fs, factorization %.1fs, "
                "quantization loop %.1fs; calibration activations + Hessian %.1f MB\n",
                stats.total, stats.forward, stats.stats, stats.factorize, stats.quantize,
                (double)stats.peak_activation_bytes / 1e6);
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
        printf(", \"method\": \"%s\", \"bits\": %d, \"group\": %d, \"sym\": %s, \"act_order\": %s, "
               "\"seconds\": %.3f, \"time\": {\"forward\": %.3f, \"statistics\": %.3f, \"factorization\": %.3f, "
               "\"quantization\": %.3f, \"scale_search\": %.3f, \"clip_search\": %.3f}, "
               "\"linear_bits_per_weight\": %.4f, \"linear_bytes\": %lld, "
               "\"total_bytes\": %lld}\n",
               qp.method == LP_METHOD_RTN ? "rtn" : qp.method == LP_METHOD_AWQ ? "awq" : "gptq", qp.bits,
               qp.group, qp.sym ? "true" : "false",
               qp.act_order ? "true" : "false", tq, stats.forward, stats.stats, stats.factorize, stats.quantize,
               stats.scale_search, stats.clip_search, bpw, (long long)sz.linear_bytes, (long long)sz.total_bytes);
    } else {
        printf("wrote %s: %s, %.4f bits per weight in the decoder linears, %.2f MB in all (%.1f s)\n",
               out, sz.formats, bpw, (double)sz.total_bytes / 1e6, tq);
    }
    lp_model_free(m);
    return 0;
}
