/*
 * cmd_export.c - `llmpress export`: a model as a GGUF file for llama.cpp or
 * a GPTQ checkpoint for vLLM / transformers.
 *
 * GGUF: the codes inside llama.cpp's types are chosen by llama.cpp's own
 * rounding (--method rtn, the default: the bytes llama-quantize writes), or
 * by our calibrated methods: the model is first quantized in memory with the
 * "ggml" method (GPTQ error feedback inside the type's grids, AWQ scales
 * folded into the norms, importance weights), then written. GPTQ: a model
 * whose linears are grouped integers is packed as is; with --method the
 * model is quantized first.
 */
#include "cli.h"

#include "llmpress/export.h"

#include <stdlib.h>
#include <string.h>

static void print_help(void) {
    puts("usage: llmpress export MODEL --to gguf|gptq|dense -o OUT [flags]\n"
         "\n"
         "  --to gguf          one GGUF file for llama.cpp / ollama\n"
         "    --type T         F16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 IQ4_NL Q2_K Q3_K Q4_K Q5_K Q6_K (Q4_K); K types fall\n"
         "                     back as llama.cpp does when a width is not a multiple of 256\n"
         "    --method M       how codes are chosen: rtn (llama.cpp's rounding, byte for byte), gptq (error\n"
         "                     feedback inside the type's grids), awq (AWQ scales folded, then rounding),\n"
         "                     awq+gptq (default: rtn)\n"
         "    --imatrix        weight the choice by each input's mean square (llama.cpp's importance matrix)\n"
         "    --embed-type T / --head-type T   the embedding's / output's type (llama-quantize's presets)\n"
         "  --to gptq          a GPTQ checkpoint directory (qweight / qzeros / scales / g_idx)\n"
         "    MODEL quantized with llmpress quantize --method rtn|gptq|awq (grouped integers), or:\n"
         "    --method rtn|gptq|awq --bits B --group G [--sym] [--act-order]   quantize first\n"
         "  --to dense         a plain Hugging Face checkpoint, every compressed linear dequantized to f32\n"
         "  --calib FILE       calibration text (gptq, awq, --imatrix)\n"
         "  --nsamples N       calibration windows (128)\n"
         "  --seqlen L         tokens per window (512; the model's window when shorter)\n"
         "  --seed S           window sampling seed (0)\n"
         "  --threads N        threads (all cores)\n"
         "  --json             print one JSON object with what was written\n"
         "  --quiet            no progress\n"
         "\n"
         "example: llmpress export ../shared/assets/models/llama-25m --to gguf --type Q4_0 --method gptq \\\n"
         "           --calib ../shared/assets/text/corpus/calib.txt -o llama-25m-q4_0.gguf");
}

typedef struct {
    const char *model, *to, *out, *type, *method, *calib, *embed_type, *head_type;
    int64_t nsamples, seqlen, seed, threads, bits, group;
    bool imatrix, sym, act_order, json, quiet;
} xopts;

static int parse(xopts *o, int argc, char **argv) {
    cli_args a = {argc, 0, argv, "export"};
    for (a.i = 1; a.i < argc; a.i++) {
        const char *f = argv[a.i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            print_help();
            return -1;
        } else if (!strcmp(f, "--to")) {
            if (!(o->to = cli_value(&a))) return 2;
        } else if (!strcmp(f, "-o") || !strcmp(f, "--out")) {
            if (!(o->out = cli_value(&a))) return 2;
        } else if (!strcmp(f, "--type")) {
            if (!(o->type = cli_value(&a))) return 2;
        } else if (!strcmp(f, "--method")) {
            if (!(o->method = cli_value(&a))) return 2;
        } else if (!strcmp(f, "--calib")) {
            if (!(o->calib = cli_value(&a))) return 2;
        } else if (!strcmp(f, "--embed-type")) {
            if (!(o->embed_type = cli_value(&a))) return 2;
        } else if (!strcmp(f, "--head-type")) {
            if (!(o->head_type = cli_value(&a))) return 2;
        } else if (!strcmp(f, "--imatrix")) {
            o->imatrix = true;
        } else if (!strcmp(f, "--sym")) {
            o->sym = true;
        } else if (!strcmp(f, "--act-order")) {
            o->act_order = true;
        } else if (!strcmp(f, "--json")) {
            o->json = true;
        } else if (!strcmp(f, "--quiet")) {
            o->quiet = true;
        } else if (!strcmp(f, "--nsamples")) {
            if (!cli_parse_i64(&a, cli_value(&a), 1, 1 << 20, &o->nsamples)) return 2;
        } else if (!strcmp(f, "--seqlen")) {
            if (!cli_parse_i64(&a, cli_value(&a), 2, 1 << 20, &o->seqlen)) return 2;
        } else if (!strcmp(f, "--seed")) {
            if (!cli_parse_i64(&a, cli_value(&a), 0, INT64_MAX, &o->seed)) return 2;
        } else if (!strcmp(f, "--threads")) {
            if (!cli_parse_i64(&a, cli_value(&a), 1, 4096, &o->threads)) return 2;
        } else if (!strcmp(f, "--bits")) {
            if (!cli_parse_i64(&a, cli_value(&a), 2, 8, &o->bits)) return 2;
        } else if (!strcmp(f, "--group")) {
            if (!cli_parse_i64(&a, cli_value(&a), -1, 1 << 30, &o->group)) return 2;
        } else if (f[0] == '-') {
            return cli_usage_error(&a, "unknown flag %s (see llmpress export --help)", f);
        } else if (!o->model) {
            o->model = f;
        } else {
            return cli_usage_error(&a, "unexpected argument '%s' (MODEL is already %s)", f, o->model);
        }
    }
    if (!o->model) return cli_usage_error(&a, "missing MODEL (see llmpress export --help)");
    if (!o->to) return cli_usage_error(&a, "missing --to gguf|gptq|dense");
    if (strcmp(o->to, "gguf") && strcmp(o->to, "gptq") && strcmp(o->to, "dense"))
        return cli_usage_error(&a, "--to %s: expected gguf, gptq or dense", o->to);
    if (!o->out) return cli_usage_error(&a, "missing -o OUT");
    const bool gguf = !strcmp(o->to, "gguf");
    if (!gguf && (o->type || o->imatrix || o->embed_type || o->head_type))
        return cli_usage_error(&a, "--type, --imatrix, --embed-type and --head-type are for --to gguf");
    if (gguf && (o->bits || o->group || o->sym || o->act_order))
        return cli_usage_error(&a, "--bits, --group, --sym and --act-order are for --to gptq (GGUF types fix them)");
    if (gguf) {
        lp_gguf_options go = lp_gguf_default_options();
        if (o->type) go.type = o->type;
        go.embed_type = o->embed_type;
        go.head_type = o->head_type;
        if (lp_gguf_options_check(&go) != LP_OK) return cli_usage_error(&a, "%s", lp_last_error());
    }
    if (o->method && strcmp(o->method, "rtn") && strcmp(o->method, "gptq") && strcmp(o->method, "awq") &&
        !(gguf && !strcmp(o->method, "awq+gptq")))
        return cli_usage_error(&a, "--method %s: expected rtn, gptq, awq%s", o->method, gguf ? " or awq+gptq" : "");
    return 0;
}

/* The settings that quantize the model before it is written, or none
 * (*ms == NULL: GGUF with llama.cpp's plain rounding, or GPTQ of an already
 * quantized model). Returns 0, or 2 after a usage error. */
static int make_settings(const xopts *o, lp_settings **ms, lp_settings **ps) {
    cli_args a = {0, 0, NULL, "export"};
    const bool gguf = !strcmp(o->to, "gguf");
    const char *method = o->method ? o->method : "rtn";
    *ms = *ps = NULL;
    char spec[256];
    if (gguf) {
        if (!strcmp(method, "rtn") && !o->imatrix) return 0;
        const bool gptq = !strcmp(method, "gptq") || !strcmp(method, "awq+gptq");
        snprintf(spec, sizeof spec, "ggml type=%s rounding=%s%s", o->type ? o->type : "q4_k", gptq ? "gptq" : "rtn",
                 o->imatrix ? " imatrix" : "");
        for (char *p = spec; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    } else {
        if (!o->method) return 0;
        snprintf(spec, sizeof spec, "%s bits=%lld group=%lld%s%s", method, (long long)(o->bits ? o->bits : 4),
                 (long long)(o->group ? o->group : 128), o->sym ? " sym" : "", o->act_order ? " act-order" : "");
    }
    if (lp_settings_parse(spec, ms) != LP_OK) return cli_usage_error(&a, "%s", lp_last_error());
    if (gguf && !strncmp(method, "awq", 3)) {
        /* AWQ searches its scales with a grouped-integer proxy of the type's grid */
        const char *t = o->type ? o->type : "q4_k";
        int bits = t[1] == '2' ? 2 : t[1] == '3' ? 3 : t[1] == '5' ? 5 : t[1] == '6' ? 6 : t[1] == '8' ? 8 : 4;
        if (!strcmp(t, "f16") || !strcmp(t, "F16")) return cli_usage_error(&a, "--method awq needs a quantized --type");
        snprintf(spec, sizeof spec, "awq bits=%d group=32", bits);
        if (lp_settings_parse(spec, ps) != LP_OK) return cli_usage_error(&a, "%s", lp_last_error());
    }
    return 0;
}

static int quantize_first(const xopts *o, lp_model *m, lp_settings *ms, lp_settings *ps) {
    cli_args a = {0, 0, NULL, "export"};
    lp_quant_params qp = {.method = ms, .prescale = ps};
    if (lp_quant_params_check(&qp) != LP_OK) return cli_usage_error(&a, "%s", lp_last_error());
    const bool calibrated = lp_quant_needs_calib(&qp);
    if (calibrated && !o->calib) return cli_usage_error(&a, "--method %s%s needs calibration text: give --calib FILE",
                                                       o->method ? o->method : "rtn", o->imatrix ? " --imatrix" : "");
    if (!calibrated && o->calib)
        return cli_usage_error(&a, "--calib is for gptq, awq and --imatrix; %s uses no calibration data", o->method);
    int64_t seqlen = o->seqlen ? o->seqlen : 512;
    const int64_t ctx = lp_model_config(m)->max_pos;
    if (!o->seqlen && seqlen > ctx) seqlen = ctx;
    lp_calib cal = {NULL, o->nsamples ? o->nsamples : 128, seqlen};
    lp_quant_stats stats = {0};
    qp.calib = calibrated ? &cal : NULL;
    qp.stats = &stats;
    size_t need = 0;
    if (lp_quant_memory_check(m, &qp, &need) != LP_OK) return cli_lib_error("export", NULL);
    int32_t *windows = NULL;
    if (calibrated && cli_load_calibration("export", o->model, o->calib, cal.nsamples, cal.seqlen,
                                           (uint64_t)o->seed, &windows) != 0)
        return 1;
    cal.tokens = windows;
    double t0 = cli_now();
    lp_status st = lp_model_quantize(m, &qp);
    free(windows);
    if (st != LP_OK) return cli_lib_error("export", "quantizing");
    if (!(o->quiet || o->json)) fprintf(stderr, "[export] quantized in %.1fs\n", cli_now() - t0);
    return 0;
}

int cmd_export(int argc, char **argv) {
    xopts o = {0};
    int rc = parse(&o, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    lp_settings *ms = NULL, *ps = NULL;
    if ((rc = make_settings(&o, &ms, &ps))) return rc;
    cli_set_threads((int)o.threads);
    const bool gguf = !strcmp(o.to, "gguf");
    double t0 = cli_now();
    lp_model *m = NULL;
    lp_tokenizer *tok = NULL;
    if (lp_model_load(o.model, &m) != LP_OK) rc = cli_lib_error("export", NULL);
    if (!rc && ms) rc = quantize_first(&o, m, ms, ps);
    if (!rc && gguf) {
        lp_gguf_options go = lp_gguf_default_options();
        if (o.type) go.type = o.type;
        go.embed_type = o.embed_type;
        go.head_type = o.head_type;
        go.verbose = !(o.quiet || o.json);
        if (cli_load_tokenizer(o.model, &tok) != LP_OK) rc = cli_lib_error("export", "loading the tokenizer");
        else if (lp_export_gguf(m, tok, &go, o.out) != LP_OK) rc = cli_lib_error("export", NULL);
    } else if (!rc && !strcmp(o.to, "dense")) {
        if (lp_export_dense(m, o.out) != LP_OK) rc = cli_lib_error("export", NULL);
    } else if (!rc) {
        if (lp_export_gptq(m, o.out) != LP_OK) rc = cli_lib_error("export", NULL);
    }
    if (!rc && o.json) {
        printf("{\"model\": ");
        cli_json_string(stdout, o.model);
        printf(", \"to\": \"%s\", \"out\": ", o.to);
        cli_json_string(stdout, o.out);
        printf(", \"type\": ");
        cli_json_string(stdout, gguf ? (o.type ? o.type : "Q4_K") : o.to);
        printf(", \"method\": ");
        cli_json_string(stdout, o.method ? o.method : "rtn");
        printf(", \"imatrix\": %s, \"seconds\": %.3f}\n", o.imatrix ? "true" : "false", cli_now() - t0);
    } else if (!rc && !o.quiet) {
        fprintf(stderr, "[export] wrote %s in %.1fs\n", o.out, cli_now() - t0);
    }
    lp_tokenizer_free(tok);
    lp_model_free(m);
    lp_settings_free(ms);
    lp_settings_free(ps);
    return rc;
}
