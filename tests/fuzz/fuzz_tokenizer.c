/*
 * fuzz_tokenizer.c - libFuzzer harness: arbitrary bytes through encode/decode.
 *
 * The first byte picks the tokenizer (Llama-25m tokenizer.json, Qwen2.5
 * tokenizer.json, stories260k's llama2.c tok512.bin, loaded once from
 * $LP_ASSETS, default ../shared/assets) and add_special; the rest is the text.
 * Oracle, beyond "no crash, no ASan/UBSan report":
 *   - invalid UTF-8 is rejected with LP_ERR_FORMAT naming the byte offset,
 *     valid UTF-8 is accepted;
 *   - every id is inside the vocabulary, and encoding again (now through
 *     the word cache) gives the same ids;
 *   - decode succeeds, and gives the text back: exactly for Llama (unless the
 *     text holds "▁" or a special token's string, which HF does not round-trip
 *     either) and llama2.c (unless BOS/EOS appear), NFC(text) for Qwen
 *     (unless the text holds an added token's string).
 * Run: ./fuzz_tokenizer -max_len=4096 fuzz-corpus/tokenizer (see docs/fuzzing.md).
 */
#include "tokenizer/tokenizer_impl.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lp_tokenizer *toks[3];

#define FUZZ_CHECK(x)                                                            \
    do {                                                                         \
        if (!(x)) {                                                              \
            fprintf(stderr, "fuzz_tokenizer: check failed at line %d: %s (%s)\n", \
                    __LINE__, #x, lp_last_error());                              \
            abort();                                                             \
        }                                                                        \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *root = getenv("LP_ASSETS");
    if (!root) root = "../shared/assets";
    static const char *rel[3] = {"models/llama-25m/tokenizer.json", "tokenizers/qwen2.5/tokenizer.json",
                                 "models/stories260k/tok512.bin"};
    for (int i = 0; i < 3; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", root, rel[i]);
        if (lp_tokenizer_load(path, &toks[i]) != LP_OK) {
            fprintf(stderr, "fuzz_tokenizer: cannot load %s: %s (set LP_ASSETS)\n", path, lp_last_error());
            abort();
        }
    }
    return 0;
}

static int contains(const char *s, size_t n, const char *needle) {
    return memmem(s, n, needle, strlen(needle)) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int which = data[0] % 3, add_special = (data[0] / 3) & 1;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    const lp_tokenizer *t = toks[which];

    int32_t *ids = NULL;
    int64_t n = -1;
    lp_status st = lp_tokenizer_encode(t, text, len, add_special, &ids, &n);
    size_t bad = 0;
    if (!lp_utf8_valid(text, len, &bad)) {
        char want[64];
        snprintf(want, sizeof want, "byte offset %zu", bad);
        FUZZ_CHECK(st == LP_ERR_FORMAT && ids == NULL && n == 0 && strstr(lp_last_error(), want));
        return 0;
    }
    FUZZ_CHECK(st == LP_OK);
    int64_t V = lp_tokenizer_vocab_size(t);
    int has_bos_eos = 0;
    for (int64_t i = 0; i < n; i++) {
        FUZZ_CHECK(ids[i] >= 0 && ids[i] < V);
        has_bos_eos |= ids[i] == 1 || ids[i] == 2;
    }

    int32_t *again = NULL;
    int64_t n2 = -1;
    FUZZ_CHECK(lp_tokenizer_encode(t, text, len, add_special, &again, &n2) == LP_OK);
    FUZZ_CHECK(n2 == n && (n == 0 || !memcmp(again, ids, (size_t)n * sizeof(int32_t))));
    free(again);

    char *dec = NULL;
    size_t dl = 0;
    FUZZ_CHECK(lp_tokenizer_decode(t, ids, n, &dec, &dl) == LP_OK && dec && dec[dl] == 0);
    if (!add_special) {
        if (which == 0 && !contains(text, len, "\xe2\x96\x81") && !contains(text, len, "<s>") &&
            !contains(text, len, "</s>") && !contains(text, len, "<unk>"))
            FUZZ_CHECK(dl == len && !memcmp(dec, text, len));
        /* Qwen normalizes each piece between added tokens on its own (as HF):
         * NFC of the whole text differs when a combining mark follows one
         * (">" + U+0338 composes to U+226F), so only texts without them */
        if (which == 1 && !contains(text, len, "<|") && !contains(text, len, "tool_call>")) {
            lp_tbuf nfc = {0};
            lp_tok_scratch sc;
            FUZZ_CHECK(lp_scratch_init(&sc) == LP_OK);
            FUZZ_CHECK(lp_unicode_normalize(text, len, 1, &nfc, &sc) == LP_OK);
            FUZZ_CHECK(dl == nfc.n && !memcmp(dec, nfc.p ? nfc.p : "", dl));
            lp_scratch_free(&sc);
            lp_tbuf_free(&nfc);
        }
        if (which == 2 && !has_bos_eos) FUZZ_CHECK(dl == len && !memcmp(dec, text, len));
    }
    free(dec);
    free(ids);
    return 0;
}
