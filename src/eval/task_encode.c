/*
 * task_encode.c - one zero-shot request (context text, continuation text) to
 * token ids, as lm-evaluation-harness 0.4's HFLM._encode_pair does.
 *
 * What: the context's trailing whitespace moves to the front of the
 * continuation; ctx = tokens(context), cont = tokens(context + continuation)
 * from position |ctx| on; no special tokens.
 * Why: "...\nAnswer: " + "Paris" must be scored as "...\nAnswer:" + " Paris"
 * (a SentencePiece/BPE vocabulary attaches the space to the next word), and
 * the harness splits the whole text's tokens by the context's token count,
 * not by encoding the continuation alone: when a merge crosses the boundary
 * (context "a", continuation "b" -> one token "ab") the harness's numbers
 * come from that split, so ours do too.
 * Design: whitespace is Python's str.isspace set (tasks.h lists it), found
 * by decoding code points backwards from the end. An empty context (nothing
 * left after the move) becomes [eot], the harness's end-of-text prefix; its
 * continuation is then the whole text's tokens.
 */
#include "llmpress/tasks.h"

#include "core/status_impl.h"

#include <stdlib.h>
#include <string.h>

static int is_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

size_t lp_task_trailing_space(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t end = len;
    while (end > 0) {
        /* the last code point: back over up to 3 continuation bytes to its lead byte */
        size_t start = end - 1;
        while (start > 0 && end - start < 4 && (p[start] & 0xC0) == 0x80) start--;
        const size_t k = end - start; /* bytes of the code point */
        uint32_t c = p[start];
        if (k == 1 && c < 0x80) {
        } else if (k == 2 && (c & 0xE0) == 0xC0) {
            c = (c & 0x1F) << 6 | (p[start + 1] & 0x3F);
        } else if (k == 3 && (c & 0xF0) == 0xE0) {
            c = (c & 0x0F) << 12 | (uint32_t)(p[start + 1] & 0x3F) << 6 | (p[start + 2] & 0x3F);
        } else {
            break; /* a 4-byte code point (never whitespace) or invalid UTF-8 */
        }
        if (!is_space(c)) break;
        end = start;
    }
    return len - end;
}

lp_status lp_task_encode(const lp_tokenizer *tok, const char *context, const char *continuation, int32_t eot,
                         int32_t **ctx, int64_t *nctx, int32_t **cont, int64_t *ncont) {
    *ctx = *cont = NULL;
    *nctx = *ncont = 0;
    const size_t lc = strlen(context), lk = strlen(continuation);
    const size_t kept = lc - lp_task_trailing_space(context, lc); /* the context after the move */
    char *whole = malloc(lc + lk + 1); /* context + continuation: the move does not change it */
    if (!whole) return lp_fail(LP_ERR_NOMEM, "out of memory");
    memcpy(whole, context, lc);
    memcpy(whole + lc, continuation, lk + 1);
    int32_t *c = NULL, *w = NULL;
    int64_t nc = 0, nw = 0;
    lp_status st = lp_tokenizer_encode(tok, context, kept, 0, &c, &nc);
    if (st == LP_OK) st = lp_tokenizer_encode(tok, whole, lc + lk, 0, &w, &nw);
    free(whole);
    if (st != LP_OK) {
        free(c);
        free(w);
        return st;
    }
    if (nc == 0) {
        /* nothing before the continuation: the harness's end-of-text prefix */
        free(c);
        if (eot < 0) {
            free(w);
            return lp_fail(LP_ERR_ARG, "an empty context is scored after EOS, and the tokenizer and "
                           "config.json name none");
        }
        if (!(c = malloc(sizeof *c))) {
            free(w);
            return lp_fail(LP_ERR_NOMEM, "out of memory");
        }
        c[0] = eot;
        *ctx = c, *nctx = 1;
        *cont = w, *ncont = nw;
        if (nw == 0) free(w), *cont = NULL;
        return LP_OK;
    }
    /* cont = whole[nc:]: empty when a merge across the boundary left fewer tokens */
    const int64_t nk = nw > nc ? nw - nc : 0;
    if (nk > 0) memmove(w, w + nc, (size_t)nk * sizeof *w);
    if (nk == 0) free(w), w = NULL;
    *ctx = c, *nctx = nc;
    *cont = w, *ncont = nk;
    return LP_OK;
}
