/*
 * test_tokenizer_parity.c - whole-corpus token ids against Hugging Face.
 *
 * Fixtures tests/data/tok/<tok>__<text>.json come from HF `tokenizers`
 * (scripts/make_fixtures.py): {"count", "chunk", "crc32": [zlib crc32 of the
 * little-endian int32 ids of each chunk], "head": [first ids], "ids": [all,
 * for the stress text], "decoded_equals_text"}. For every fixture present we
 * encode the same text with add_special = 0 and compare the count and every
 * chunk's crc; on a mismatch the first differing chunk is named and, where the
 * fixture has the ids, the ids around the first difference are printed.
 * Then decode(encode(text)) is checked: equal to the text where HF's is, equal
 * to NFC(text) for Qwen (whose normalizer is NFC), and for Llama's stress text
 * equal to the text with the space HF's Prepend("▁") adds after each special
 * token that is followed by more text.
 * Skips (exit 77) when the fixture directory or the assets are missing.
 */
#include "llmpress/tokenizer.h"
#include "io/json.h"
#include "tokenizer/tokenizer_impl.h"
#include "test.h"

#include <zlib.h>

typedef struct {
    const char *name, *asset;
} named;

static const named TOKS[] = {
    {"llama25m", "models/llama-25m/tokenizer.json"},
    {"qwen25", "tokenizers/qwen2.5/tokenizer.json"},
};
static const named TEXTS[] = {
    {"wiki_test", "text/wikitext-2-raw/wiki.test.raw"},
    {"heldout", "text/corpus/heldout.txt"},
    {"stress", NULL}, /* tests/data/unicode_stress.txt */
};

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)sz + 1);
    *len = fread(p, 1, (size_t)sz, f);
    p[*len] = 0;
    fclose(f);
    return p;
}

static uint32_t crc_ids(const int32_t *ids, int64_t n) {
    uLong crc = crc32(0L, Z_NULL, 0);
    unsigned char le[4];
    for (int64_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        le[0] = (unsigned char)v;
        le[1] = (unsigned char)(v >> 8);
        le[2] = (unsigned char)(v >> 16);
        le[3] = (unsigned char)(v >> 24);
        crc = crc32(crc, le, 4);
    }
    return (uint32_t)crc;
}

static void show_around(const lp_tokenizer *t, const int32_t *ours, int64_t n, const lp_json *ref,
                        int64_t lo, int64_t hi) {
    int64_t first = -1;
    for (int64_t i = lo; i < hi && i < n && i < ref->n && first < 0; i++)
        if (ours[i] != ref->items[i].i64) first = i;
    if (first < 0) {
        fprintf(stderr, "  (ids in the fixture agree up to %lld)\n", (long long)(hi < ref->n ? hi : ref->n));
        return;
    }
    fprintf(stderr, "  first difference at id %lld:\n", (long long)first);
    for (int64_t i = first > 5 ? first - 5 : 0; i < first + 6; i++) {
        size_t l = 0;
        const char *s = i < n ? lp_tokenizer_token_text(t, ours[i], &l) : NULL;
        fprintf(stderr, "   %8lld  ours %7d %-16.*s", (long long)i, i < n ? ours[i] : -1, (int)l, s ? s : "");
        if (i < ref->n) {
            int32_t r = (int32_t)ref->items[i].i64;
            s = lp_tokenizer_token_text(t, r, &l);
            fprintf(stderr, "  hf %7d %.*s", r, (int)l, s ? s : "");
        }
        fprintf(stderr, "%s\n", i == first ? "   <==" : "");
    }
}

/* Llama's expected decode of its stress text: HF normalizes each piece between
 * special tokens on its own, so the piece after a special token gets its own
 * leading "▁", which decodes to an extra space. */
static char *llama_expected(const lp_tokenizer *t, const char *text, size_t len, size_t *ol) {
    static const char *special[] = {"<unk>", "<s>", "</s>"};
    char *out = malloc(2 * len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t best = 0;
        for (int k = 0; k < 3; k++) {
            size_t l = strlen(special[k]);
            if (l > best && i + l <= len && !memcmp(text + i, special[k], l)) best = l;
        }
        if (!best) {
            out[o++] = text[i++];
            continue;
        }
        memcpy(out + o, text + i, best);
        o += best;
        i += best;
        int next_special = 0;
        for (int k = 0; k < 3; k++)
            next_special |= !strncmp(text + i, special[k], strlen(special[k]));
        if (i < len && !next_special) out[o++] = ' ';
    }
    (void)t;
    out[o] = 0;
    *ol = o;
    return out;
}

static int check_one(const named *tk, const named *tx, const char *fixture) {
    lp_json_doc *doc = NULL;
    CHECK_OK(lp_json_parse_file(fixture, &doc));
    if (!doc) return 0;
    const lp_json *fx = lp_json_root(doc);
    char tpath[4096];
    snprintf(tpath, sizeof tpath, "%s", test_asset(tk->asset));
    size_t len = 0;
    char *text = read_all(tx->asset ? test_asset(tx->asset) : test_data("unicode_stress.txt"), &len);
    CHECKF(text, "%s: cannot read the text", tx->name);
    lp_tokenizer *t = NULL;
    CHECK_OK(lp_tokenizer_load(tpath, &t));
    if (!text || !t) {
        lp_json_free(doc);
        free(text);
        lp_tokenizer_free(t);
        return 0;
    }

    int32_t *ids = NULL;
    int64_t n = 0;
    CHECK_OK(lp_tokenizer_encode(t, text, len, 0, &ids, &n));
    int64_t count = lp_json_int(lp_json_get(fx, "count"), -1);
    int64_t chunk = lp_json_int(lp_json_get(fx, "chunk"), 4096);
    const lp_json *crcs = lp_json_get(fx, "crc32"), *head = lp_json_get(fx, "head"),
                  *all = lp_json_get(fx, "ids");
    int fails0 = lp_test_failures;
    CHECKF(n == count, "%s on %s: %lld ids, HF %lld", tk->name, tx->name, (long long)n, (long long)count);
    int64_t nchunks = crcs ? crcs->n : 0;
    CHECKF(chunk > 0 && nchunks == (count + chunk - 1) / chunk, "%s on %s: fixture has %lld chunk crcs",
           tk->name, tx->name, (long long)nchunks);
    for (int64_t k = 0; chunk > 0 && k < nchunks; k++) {
        int64_t a = k * chunk, b = a + chunk < n ? a + chunk : n;
        uint32_t want = (uint32_t)lp_json_int(&crcs->items[k], -1);
        uint32_t got = a < n ? crc_ids(ids + a, b - a) : 0;
        if (got != want) {
            CHECKF(0, "%s on %s: chunk %lld (ids %lld..%lld) crc 0x%08x, HF 0x%08x (first bad chunk)",
                   tk->name, tx->name, (long long)k, (long long)a, (long long)(a + chunk), got, want);
            const lp_json *ref = all ? all : head;
            if (ref && a < ref->n) show_around(t, ids, n, ref, a, a + chunk);
            else fprintf(stderr, "  (the fixture has no ids this far: rerun with the \"ids\" field)\n");
            break;
        }
    }
    if (lp_test_failures == fails0)
        printf("%-9s %-10s %8lld ids, %lld chunks: TOKENS OK\n", tk->name, tx->name, (long long)n,
               (long long)nchunks);

    /* decode */
    char *dec = NULL;
    size_t dl = 0;
    CHECK_OK(lp_tokenizer_decode(t, ids, n, &dec, &dl));
    if (dec) {
        int same = dl == len && !memcmp(dec, text, len);
        const lp_json *hf_same = lp_json_get(fx, "decoded_equals_text");
        if (hf_same && hf_same->type == LP_JSON_BOOL)
            CHECKF(same == hf_same->boolean, "%s on %s: decode(encode(text)) == text is %d, HF %d",
                   tk->name, tx->name, same, hf_same->boolean);
        const char *want = text;
        size_t wl = len;
        lp_tbuf nfc = {0};
        char *exp = NULL;
        if (!strcmp(tk->name, "qwen25")) {
            lp_tok_scratch sc;
            CHECK_OK(lp_scratch_init(&sc));
            CHECK_OK(lp_unicode_normalize(text, len, 1, &nfc, &sc));
            lp_scratch_free(&sc);
            want = nfc.p;
            wl = nfc.n;
        } else if (!strcmp(tx->name, "stress")) {
            exp = llama_expected(t, text, len, &wl);
            want = exp;
        }
        int ok = want && dl == wl && !memcmp(dec, want, wl);
        CHECKF(ok, "%s on %s: decoded text differs from the expected text", tk->name, tx->name);
        if (!ok && want) {
            size_t i = 0;
            while (i < dl && i < wl && dec[i] == want[i]) i++;
            fprintf(stderr, "  first difference at byte %zu: ours \"%.40s\" expected \"%.40s\"\n", i,
                    dec + i, want + i);
        } else if (ok) {
            printf("%-9s %-10s decode OK (%s)\n", tk->name, tx->name,
                   want == text ? "== text" : want == exp ? "== text + HF's spaces after specials" : "== NFC(text)");
        }
        free(exp);
        lp_tbuf_free(&nfc);
    }
    free(dec);
    free(ids);
    free(text);
    lp_tokenizer_free(t);
    lp_json_free(doc);
    return 1;
}

int main(void) {
    FILE *probe = NULL;
    int ran = 0;
    for (size_t a = 0; a < sizeof(TOKS) / sizeof(TOKS[0]); a++) {
        for (size_t b = 0; b < sizeof(TEXTS) / sizeof(TEXTS[0]); b++) {
            char rel[256];
            snprintf(rel, sizeof rel, "tok/%s__%s.json", TOKS[a].name, TEXTS[b].name);
            char fixture[4096];
            snprintf(fixture, sizeof fixture, "%s", test_data(rel));
            probe = fopen(fixture, "rb");
            if (!probe) {
                printf("no fixture %s: skipped\n", fixture);
                continue;
            }
            fclose(probe);
            ran += check_one(&TOKS[a], &TEXTS[b], fixture);
        }
    }
    if (!ran && !lp_test_failures) {
        printf("SKIP: no tokenizer fixtures in %s\n", test_data("tok"));
        return 77;
    }
    TEST_DONE();
}
