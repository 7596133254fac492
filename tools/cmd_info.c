/*
 * cmd_info.c - `llmpress info`: architecture, formats and exact sizes.
 */
#include "cli.h"

#include <math.h>
#include <string.h>

static const char *const HELP =
    "usage: llmpress info MODEL [--linears] [--json]\n"
    "\n"
    "Architecture, storage format of the linears, parameter counts, exact bytes\n"
    "and bits per weight (scales, zero points and padding included) of MODEL.\n"
    "  --linears   also each decoder linear: format, shape, kept fraction, bytes\n"
    "              (what a rank or sparsity allocation chose); with --json, the\n"
    "              array \"linears\"\n";

/* Each decoder linear, as text lines or the JSON array "linears" (after a key). */
static void print_linears(const lp_model *m, bool json) {
    const int64_t n = lp_model_linear_count(m);
    if (json) printf(", \"linears\": [");
    else printf("%-34s %-11s %-8s %10s  %s\n", "linear", "shape", "kept", "bytes", "format");
    for (int64_t i = 0; i < n; i++) {
        lp_linear_info li;
        lp_model_linear_info(m, i, &li);
        const double kept = (double)li.stored_params / (double)(li.rows * li.cols);
        if (json) {
            printf("%s{\"name\": ", i ? ", " : "");
            cli_json_string(stdout, li.name);
            printf(", \"format\": ");
            cli_json_string(stdout, li.format);
            printf(", \"rows\": %lld, \"cols\": %lld, \"stored_params\": %lld, \"kept_fraction\": %.6f, "
                   "\"bytes\": %lld}", (long long)li.rows, (long long)li.cols, (long long)li.stored_params, kept,
                   (long long)li.bytes);
        } else {
            char shape[32];
            snprintf(shape, sizeof shape, "%lldx%lld", (long long)li.rows, (long long)li.cols);
            printf("%-34s %-11s %-8.4f %10lld  %s\n", li.name, shape, kept, (long long)li.bytes, li.format);
        }
    }
    if (json) printf("]");
}

int cmd_info(int argc, char **argv) {
    cli_args a = {argc, 1, argv, "info"};
    const char *model_dir = NULL;
    bool json = false, linears = false;
    for (; a.i < argc; a.i++) {
        const char *f = argv[a.i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            fputs(HELP, stdout);
            return 0;
        } else if (!strcmp(f, "--json")) {
            json = true;
        } else if (!strcmp(f, "--linears")) {
            linears = true;
        } else if (f[0] == '-') {
            return cli_usage_error(&a, "unknown flag '%s'", f);
        } else if (!model_dir) {
            model_dir = f;
        } else {
            return cli_usage_error(&a, "unexpected argument '%s'", f);
        }
    }
    if (!model_dir) return cli_usage_error(&a, "no MODEL directory given");
    lp_model *m = NULL;
    if (lp_model_load(model_dir, &m) != LP_OK) return cli_lib_error("info", NULL);
    const lp_config *c = lp_model_config(m);
    lp_model_size sz;
    lp_model_size_get(m, &sz);
    double lbpw = 8.0 * (double)sz.linear_bytes / (double)sz.linear_params;
    double tbpw = 8.0 * (double)sz.total_bytes / (double)sz.total_params;
    double pbpw = sz.linear_paper_bits / (double)sz.linear_params;
    if (json) {
        printf("{\"model\": ");
        cli_json_string(stdout, model_dir);
        printf(", \"architecture\": \"%s\", \"layers\": %lld, \"hidden\": %lld, \"heads\": %lld, "
               "\"kv_heads\": %lld, \"head_dim\": %lld, \"ffn\": %lld, \"vocab\": %lld, \"tied\": %s, "
               "\"linear_format\": ",
               c->arch_name, (long long)c->n_layers, (long long)c->dim, (long long)c->n_heads,
               (long long)c->n_kv_heads, (long long)c->head_dim, (long long)c->ffn,
               (long long)c->vocab, c->tied ? "true" : "false");
        cli_json_string(stdout, sz.formats);
        printf(", \"linear_params\": %lld, \"linear_stored_params\": %lld, \"linear_kept_fraction\": %.6f, "
               "\"linear_bytes\": %lld, \"linear_bits_per_weight\": %.4f, "
               "\"linear_paper_bits_per_weight\": %.4f, \"total_params\": %lld, \"total_bytes\": %lld, "
               "\"total_bits_per_weight\": %.4f",
               (long long)sz.linear_params, (long long)sz.linear_stored_params,
               (double)sz.linear_stored_params / (double)sz.linear_params, (long long)sz.linear_bytes, lbpw, pbpw,
               (long long)sz.total_params, (long long)sz.total_bytes, tbpw);
        if (linears) print_linears(m, true);
        printf("}\n");
    } else {
        printf("model          %s\n", model_dir);
        printf("architecture   %s: %lld layers, hidden %lld, %lld heads / %lld kv heads of %lld, "
               "MLP %lld, vocab %lld%s\n",
               c->arch_name, (long long)c->n_layers, (long long)c->dim, (long long)c->n_heads,
               (long long)c->n_kv_heads, (long long)c->head_dim, (long long)c->ffn, (long long)c->vocab,
               c->tied ? ", tied embeddings" : "");
        printf("linears        %s, %d of %lld compressed\n", sz.formats, sz.n_compressed,
               (long long)(7 * c->n_layers));
        printf("linear weights %lld params, %lld bytes, %.4f bits per weight", (long long)sz.linear_params,
               (long long)sz.linear_bytes, lbpw);
        if (fabs(pbpw - lbpw) > 1e-9) printf(" (%.4f as the method's paper counts)", pbpw);
        printf("\n");
        if (sz.linear_stored_params != sz.linear_params)
            printf("stored values  %lld of the %lld weights' places (%.4f kept: pruned or factorized)\n",
                   (long long)sz.linear_stored_params, (long long)sz.linear_params,
                   (double)sz.linear_stored_params / (double)sz.linear_params);
        printf("whole model    %lld params, %lld bytes (%.2f MB), %.4f bits per weight\n",
               (long long)sz.total_params, (long long)sz.total_bytes, (double)sz.total_bytes / 1e6, tbpw);
        if (linears) print_linears(m, false);
    }
    lp_model_free(m);
    return 0;
}
