/*
 * resume.c - saving and restoring a calibrated run block by block.
 *
 * What: the state files of resume.h: per finished block its packed linears,
 *   plus the calibration hidden states entering the next block.
 * Why: a 7B model takes hours on a few cores (docs/benchmarks.md); an
 *   interrupted run should lose one block, not all of them.
 * Design: the hidden states are stored, not recomputed by re-running the
 *   finished blocks: that would need the exact forward each method used to
 *   produce them (AWQ propagates the unquantized block's output, the other
 *   methods the compressed block's), and storing them makes a resumed run
 *   write a checkpoint bit-identical to an uninterrupted one. They cost
 *   N L D floats of disk (100 MB for llama-25m at 128 x 512, 4.3 GB for a 7B
 *   model at 128 x 2048) and one write per block. The key guards against
 *   mixing runs: a state is only used by the run that made it.
 */
#include "quant/resume.h"

#include "core/fileio.h"
#include "core/status_impl.h"
#include "format/format.h"
#include "model/model_impl.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_META "llmpress.resume.key"
#define BLOCKS_META "llmpress.resume.blocks"
#define STATE_FILE "state.safetensors"

/* FNV-1a, 64 bits, over the calibration token ids. */
static uint64_t hash_tokens(const int32_t *t, int64_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    const unsigned char *b = (const unsigned char *)t;
    for (int64_t i = 0; i < n * (int64_t)sizeof *t; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

lp_status lp_resume_key(const lp_model *m, const lp_quant_params *p, char **key) {
    const lp_config *c = &m->cfg;
    const lp_calib *cal = p->calib;
    char path[PATH_MAX];
    if (!realpath(m->dir, path)) snprintf(path, sizeof path, "%s", m->dir);
    for (char *s = path; *s; s++)
        if (*s == ' ') *s = '?'; /* words are space-separated */
    /* the settings, as their schemas describe them: every option of the
     * method (and of the prescale), so a new method needs no edit here */
    char ms[2048], ps[2048] = "";
    lp_settings_describe(p->method, ms, sizeof ms);
    if (p->prescale) lp_settings_describe(p->prescale, ps, sizeof ps);
    const size_t n = strlen(path) + sizeof ms + sizeof ps + 512;
    *key = malloc(n);
    if (!*key) return lp_fail(LP_ERR_NOMEM, "out of memory");
    snprintf(*key, n,
             "resume=2 model=%s layers=%lld dim=%lld ffn=%lld method=%s %s prescale=%s%s%s nsamples=%lld "
             "seqlen=%lld calib_tokens=%016llx",
             path, (long long)c->n_layers, (long long)c->dim, (long long)c->ffn,
             lp_method_name(lp_settings_method(p->method)), ms,
             p->prescale ? lp_method_name(lp_settings_method(p->prescale)) : "none", p->prescale ? " " : "", ps,
             (long long)cal->nsamples, (long long)cal->seqlen,
             (unsigned long long)hash_tokens(cal->tokens, cal->nsamples * cal->seqlen));
    return LP_OK;
}

/* The first word of `have` that is not in `want` at the same place, as
 * "word" into buf (for the error message). */
static void first_difference(const char *have, const char *want, char *buf, size_t n) {
    for (;;) {
        size_t lh = strcspn(have, " "), lw = strcspn(want, " ");
        if (lh != lw || strncmp(have, want, lh)) {
            snprintf(buf, n, "%.*s here, %.*s in the state", (int)lw, want, (int)lh, have);
            return;
        }
        if (!have[lh] || !want[lw]) break;
        have += lh + 1;
        want += lw + 1;
    }
    snprintf(buf, n, "a different run");
}

static lp_status check_key(const lp_weights *w, const char *path, const char *key, const char *dir) {
    const char *have = lp_weights_meta(w, KEY_META);
    if (!have)
        return lp_fail(LP_ERR_FORMAT, "%s: not a llmpress resume state (no %s metadata)", path, KEY_META);
    if (strcmp(have, key)) {
        char diff[1024];
        first_difference(have, key, diff, sizeof diff);
        return lp_fail(LP_ERR_ARG, "%s holds the state of another run (%s); remove it, or choose another "
                       "resume directory", dir, diff);
    }
    return LP_OK;
}

static char *block_path(const char *dir, int64_t b) {
    char name[64];
    snprintf(name, sizeof name, "block-%05lld.safetensors", (long long)b);
    return lp_path_join(dir, name);
}

/* Create dir if missing; an existing non-directory is an error. */
static lp_status ensure_dir(const char *dir) {
    if (lp_is_dir(dir)) return LP_OK;
    if (lp_file_exists(dir)) return lp_fail(LP_ERR_IO, "%s: exists and is not a directory", dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return lp_fail(LP_ERR_IO, "%s: cannot create the resume directory: %s", dir, strerror(errno));
    return LP_OK;
}

lp_status lp_resume_load(const char *dir, const char *key, lp_model *m, float *X, int64_t n, int64_t *done) {
    *done = 0;
    char *sp = lp_path_join(dir, STATE_FILE);
    if (!sp) return lp_fail(LP_ERR_NOMEM, "out of memory");
    if (!lp_file_exists(sp)) {
        free(sp);
        return ensure_dir(dir);
    }
    lp_weights *sw = NULL;
    lp_status st = lp_weights_open(sp, &sw);
    if (st == LP_OK) st = check_key(sw, sp, key, dir);
    const char *bs = st == LP_OK ? lp_weights_meta(sw, BLOCKS_META) : NULL;
    char *end = NULL;
    long long blocks = bs ? strtoll(bs, &end, 10) : -1;
    if (st == LP_OK && (!bs || *end || blocks < 1 || blocks > m->cfg.n_layers))
        st = lp_fail(LP_ERR_FORMAT, "%s: %s is \"%s\"; expected 1..%lld finished blocks", sp, BLOCKS_META,
                     bs ? bs : "(missing)", (long long)m->cfg.n_layers);
    const lp_tensor_view *x = st == LP_OK ? lp_weights_find(sw, "x") : NULL;
    if (st == LP_OK && (!x || x->dtype != LP_DT_F32 || x->numel != n))
        st = lp_fail(LP_ERR_FORMAT, "%s: tensor \"x\" should be F32 with %lld values (the calibration states)",
                     sp, (long long)n);
    for (int64_t b = 0; st == LP_OK && b < blocks; b++) {
        char *bp = block_path(dir, b);
        lp_weights *bw = NULL;
        st = bp ? lp_weights_open(bp, &bw) : lp_fail(LP_ERR_NOMEM, "out of memory");
        if (st == LP_OK) st = check_key(bw, bp, key, dir);
        if (st == LP_OK) st = lp_ckpt_load_layer_state(m, b, bw, bp);
        for (int k = 0; st == LP_OK && k < LP_NLIN; k++) /* every method compresses all seven */
            if (lp_linear_is(&m->layers[b].lin[k], &lp_format_dense)) {
                char name[256];
                lp_linear_name(b, k, name, sizeof name);
                st = lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\" is missing (a finished block holds all seven)", bp,
                             name);
            }
        if (st == LP_OK) {
            st = lp_model_keep_weights(m, bw); /* the restored linears point into it */
        } else {
            lp_weights_close(bw);
        }
        free(bp);
    }
    if (st == LP_OK) {
        memcpy(X, x->data, (size_t)n * sizeof(float));
        *done = blocks;
    }
    lp_weights_close(sw);
    free(sp);
    return st;
}

lp_status lp_resume_save(const char *dir, const char *key, lp_model *m, int64_t b, const float *X, int64_t n) {
    LP_TRY(ensure_dir(dir));
    lp_st_writer *w = NULL;
    char blocks[32];
    snprintf(blocks, sizeof blocks, "%lld", (long long)b + 1);
    char *bp = block_path(dir, b), *sp = lp_path_join(dir, STATE_FILE);
    lp_status st = bp && sp ? lp_st_writer_init(&w) : lp_fail(LP_ERR_NOMEM, "out of memory");
    if (st == LP_OK) st = lp_st_writer_meta(w, "llmpress.format_version", LP_FORMAT_VERSION_STR);
    if (st == LP_OK) st = lp_st_writer_meta(w, KEY_META, key);
    if (st == LP_OK) st = lp_ckpt_add_layer_state(w, m, b);
    if (st == LP_OK) st = lp_st_writer_save(w, bp);
    lp_st_writer_free(w);
    w = NULL;
    if (st == LP_OK) st = lp_st_writer_init(&w);
    if (st == LP_OK) st = lp_st_writer_meta(w, KEY_META, key);
    if (st == LP_OK) st = lp_st_writer_meta(w, BLOCKS_META, blocks);
    if (st == LP_OK) st = lp_st_writer_add(w, "x", LP_DT_F32, 1, &n, X);
    if (st == LP_OK) st = lp_st_writer_save(w, sp);
    lp_st_writer_free(w);
    free(bp);
    free(sp);
    return st == LP_OK ? LP_OK : lp_fail_ctx(st, "saving the resume state of block %lld", (long long)b);
}

lp_status lp_resume_clear(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return LP_OK;
        return lp_fail(LP_ERR_IO, "%s: cannot open the resume directory: %s", dir, strerror(errno));
    }
    lp_status st = LP_OK;
    struct dirent *e;
    while (st == LP_OK && (e = readdir(d))) {
        long long b;
        char tail[32];
        const bool ours = !strcmp(e->d_name, STATE_FILE) ||
                          (sscanf(e->d_name, "block-%lld.safetensor%31s", &b, tail) == 2 && !strcmp(tail, "s"));
        if (!ours) continue;
        char *p = lp_path_join(dir, e->d_name);
        if (!p) st = lp_fail(LP_ERR_NOMEM, "out of memory");
        else if (unlink(p) != 0) st = lp_fail(LP_ERR_IO, "%s: cannot remove: %s", p, strerror(errno));
        free(p);
    }
    closedir(d);
    if (st == LP_OK) rmdir(dir); /* only succeeds when nothing else is in it */
    return st;
}
