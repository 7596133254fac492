/*
 * tokenizer_unicode.c - UTF-8 validation/decoding, lossy UTF-8 and NFC/NFD.
 *
 * What: the Unicode pieces the tokenizer needs without pulling in ICU.
 * Why:  HF tokenizers validates input as Rust strings (valid UTF-8 only),
 * Qwen2-style tokenizers NFC-normalize before splitting, and the byte-level
 * decoder turns bytes back into text with Rust's from_utf8_lossy rules.
 * Design: NFC follows UAX #15 directly:
 *   1. quick check: text between "unsafe" characters (ones NFC could change:
 *      NFC_QC=No/Maybe or a non-zero combining class) is already NFC and is
 *      copied as is (the common case: ASCII, most CJK). Each unsafe run is
 *      normalized together with the safe character before it (a starter it
 *      may compose with) up to the next safe character: a safe character
 *      (NFC_QC=Yes, class 0, composes with nothing before it) is a boundary
 *      that normalization never crosses (UAX #15, section 9);
 *   2. otherwise decompose every character fully (table lookups; Hangul
 *      syllables algorithmically: S = SBase + (L*VCount + V)*TCount + T),
 *   3. put each run of non-starters in canonical order (a stable insertion
 *      sort by combining class), and
 *   4. recompose: a character C combines with the last starter S when no
 *      character between them has class 0 or a class >= C's, and (S, C) is a
 *      primary composite (table) or a Hangul L+V / LV+T pair.
 * The tables are generated from Python's unicodedata by
 * scripts/gen_unicode_nfc.py into tokenizer_nfc_data.h.
 */
#include "tokenizer/tokenizer_impl.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_nfc_data.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------ UTF-8 */

int lp_utf8_len(unsigned char c) {
    if (c < 0x80) return 1;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    return 1;
}

/* Length of a well-formed sequence at s[0..n), or 0 if ill-formed. Also
 * reports, in *sub, the length of the maximal ill-formed subpart (the prefix
 * that could still have started a valid sequence), for lossy decoding. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *sub) {
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */
    *sub = 1;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;      /* no overlongs */
        else if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;      /* no overlongs */
        else if (c == 0xF4) hi = 0x8F; /* <= U+10FFFF */
    } else {
        return 0;
    }
    for (size_t k = 1; k < need; k++) {
        if (k >= n) return 0;
        unsigned char b = s[k];
        unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (b < l || b > h) return 0;
        *sub = k + 1;
    }
    return need;
}

int lp_utf8_valid(const char *s, size_t n, size_t *bad) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path, 8 bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, u + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t sub, k = utf8_seq(u + i, n - i, &sub);
        if (!k) {
            if (bad) *bad = i;
            return 0;
        }
        i += k;
    }
    return 1;
}

uint32_t lp_utf8_next(const char *s, size_t *i) {
    const unsigned char *u = (const unsigned char *)s + *i;
    uint32_t c = u[0];
    if (c < 0x80) {
        *i += 1;
        return c;
    }
    if (c < 0xE0) {
        *i += 2;
        return ((c & 0x1F) << 6) | (u[1] & 0x3F);
    }
    if (c < 0xF0) {
        *i += 3;
        return ((c & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
    }
    *i += 4;
    return ((c & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) | ((uint32_t)(u[2] & 0x3F) << 6) |
           (u[3] & 0x3F);
}

int lp_utf8_put(char *out, uint32_t cp) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

lp_status lp_utf8_lossy(const char *s, size_t n, lp_tbuf *out) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0; /* run: start of the pending valid stretch */
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t sub, k = utf8_seq(u + i, n - i, &sub);
        if (k) {
            i += k;
            continue;
        }
        LP_TRY(lp_tbuf_put(out, s + run, i - run));
        LP_TRY(lp_tbuf_put(out, "\xEF\xBF\xBD", 3)); /* U+FFFD */
        i += sub;
        run = i;
    }
    return lp_tbuf_put(out, s + run, n - run);
}

int lp_unicode_is_space(uint32_t c) {
    if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
    if (c < 0x85) return 0;
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* -------------------------------------------------------------------- NFC */

enum {
    SBASE = 0xAC00, LBASE = 0x1100, VBASE = 0x1161, TBASE = 0x11A7,
    LCOUNT = 19, VCOUNT = 21, TCOUNT = 28, NCOUNT = VCOUNT * TCOUNT, SCOUNT = LCOUNT * NCOUNT,
};

static int ccc_of(uint32_t c) {
    if (c < 0x300) return 0;
    size_t lo = 0, hi = NELEM(lp_nfc_ccc);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < lp_nfc_ccc[mid][0]) hi = mid;
        else if (c > lp_nfc_ccc[mid][1]) lo = mid + 1;
        else return (int)lp_nfc_ccc[mid][2];
    }
    return 0;
}

static int is_unsafe(uint32_t c) {
    if (c < 0x300) {
        /* below U+0300 only a few Latin-1 letters decompose, none are unsafe
         * on their own; the table says so too, this just skips the search */
        if (c < 0xC0) return 0;
    }
    if (c >= 0x1161 && c <= 0x1175) return 1; /* Hangul V: may join a preceding L */
    if (c >= 0x11A8 && c <= 0x11C2) return 1; /* Hangul T: may join a preceding LV */
    size_t lo = 0, hi = NELEM(lp_nfc_unsafe);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < lp_nfc_unsafe[mid][0]) hi = mid;
        else if (c > lp_nfc_unsafe[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

/* Full canonical decomposition of c; returns a pointer into the pool (or to
 * *self) and its length. */
static const uint32_t *decomp_of(uint32_t c, uint32_t *self, int *len) {
    size_t lo = 0, hi = NELEM(lp_nfc_decomp);
    if (c >= 0xC0) {
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (c < lp_nfc_decomp[mid][0]) hi = mid;
            else if (c > lp_nfc_decomp[mid][0]) lo = mid + 1;
            else {
                *len = (int)lp_nfc_decomp[mid][2];
                return lp_nfc_decomp_pool + lp_nfc_decomp[mid][1];
            }
        }
    }
    *self = c;
    *len = 1;
    return self;
}

/* The primary composite of (a, b), or 0. */
static uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE &&
        b < TBASE + TCOUNT)
        return a + (b - TBASE);
    size_t lo = 0, hi = NELEM(lp_nfc_comp);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint32_t f = lp_nfc_comp[mid][0], s = lp_nfc_comp[mid][1];
        if (a < f || (a == f && b < s)) hi = mid;
        else if (a > f || b > s) lo = mid + 1;
        else return lp_nfc_comp[mid][2];
    }
    return 0;
}

/* NFC (compose) or NFD of s[0..n) in full: steps 2-4 of the header. */
static lp_status normalize_region(const char *s, size_t n, int compose, lp_tbuf *out,
                                  lp_tok_scratch *sc) {
    /* 2. decompose into sc->cps (at most 4 code points per input byte:
     * the longest canonical decomposition is 4 characters from 3 bytes) */
    size_t cap = 4 * n + 4, m = 0;
    if (sc->capcps < cap) {
        uint32_t *p = realloc(sc->cps, cap * sizeof(uint32_t));
        if (!p) return lp_fail(LP_ERR_NOMEM, "tokenizer: out of memory normalizing %zu bytes", n);
        sc->cps = p;
        sc->capcps = cap;
    }
    uint32_t *cp = sc->cps;
    for (size_t i = 0; i < n;) {
        uint32_t c = lp_utf8_next(s, &i);
        if (c >= SBASE && c < SBASE + SCOUNT) {
            uint32_t si = c - SBASE;
            cp[m++] = LBASE + si / NCOUNT;
            cp[m++] = VBASE + (si % NCOUNT) / TCOUNT;
            if (si % TCOUNT) cp[m++] = TBASE + si % TCOUNT;
            continue;
        }
        uint32_t self;
        int len;
        const uint32_t *d = decomp_of(c, &self, &len);
        for (int k = 0; k < len; k++) cp[m++] = d[k];
    }

    /* 3. canonical ordering: stable insertion sort of each non-starter run */
    for (size_t i = 1; i < m; i++) {
        int ci = ccc_of(cp[i]);
        if (!ci) continue;
        size_t j = i;
        uint32_t c = cp[i];
        while (j > 0) {
            int cj = ccc_of(cp[j - 1]);
            if (cj <= ci) break;
            cp[j] = cp[j - 1];
            j--;
        }
        cp[j] = c;
    }

    /* 4. recompose in place */
    if (compose && m > 0) {
        size_t starter = 0, w = 1;
        int last = ccc_of(cp[0]) ? 256 : 0; /* a leading non-starter blocks */
        for (size_t r = 1; r < m; r++) {
            uint32_t c = cp[r];
            int cc = ccc_of(c);
            uint32_t comp = last == 256 ? 0 : compose_pair(cp[starter], c);
            /* last == 0 means the previous kept char is the starter itself */
            if (comp && (last < cc || last == 0)) {
                cp[starter] = comp;
                continue;
            }
            if (cc == 0) {
                starter = w;
            }
            last = cc;
            cp[w++] = c;
        }
        m = w;
    }

    LP_TRY(lp_tbuf_reserve(out, 4 * m));
    for (size_t i = 0; i < m; i++) out->n += (size_t)lp_utf8_put(out->p + out->n, cp[i]);
    return LP_OK;
}

/* A character after which, and before which, normalization may restart. */
static int is_safe(uint32_t c, int compose) {
    if (c < 0x80) return 1;
    if (compose) return !is_unsafe(c);
    uint32_t self;
    int len;
    return decomp_of(c, &self, &len) == &self && !(c >= SBASE && c < SBASE + SCOUNT) && !ccc_of(c);
}

lp_status lp_unicode_normalize(const char *s, size_t n, int compose, lp_tbuf *out,
                               lp_tok_scratch *sc) {
    size_t done = 0, last_safe = 0, i = 0;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80) {
            last_safe = i++;
            continue;
        }
        size_t at = i;
        if (is_safe(lp_utf8_next(s, &i), compose)) {
            last_safe = at;
            continue;
        }
        /* an unsafe run: from the last safe character to the next one */
        size_t rs = last_safe > done ? last_safe : done, re = i;
        while (re < n) {
            size_t k = re;
            if ((unsigned char)s[re] < 0x80 || is_safe(lp_utf8_next(s, &k), compose)) break;
            re = k;
        }
        LP_TRY(lp_tbuf_put(out, s + done, rs - done));
        LP_TRY(normalize_region(s + rs, re - rs, compose, out, sc));
        done = i = last_safe = re;
    }
    return lp_tbuf_put(out, s + done, n - done);
}
