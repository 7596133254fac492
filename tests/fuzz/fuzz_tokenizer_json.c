/*
 * fuzz_tokenizer_json.c - libFuzzer harness: arbitrary bytes as a tokenizer.
 *
 * The input is handed to lp_tokenizer_load_buffer as a tokenizer.json (or,
 * when it does not start with '{', a llama2.c tokenizer.bin). Oracle, beyond
 * "no crash, no ASan/UBSan report": a rejection leaves a message naming
 * "fuzz.json"; an accepted tokenizer encodes a few fixed texts and the input
 * itself (when it is UTF-8) to ids inside its vocabulary, decodes them, and
 * decodes every id below 256 (an id without a token decodes to "").
 * Seeds: tests/data/tok_synth/s*.json (small tokenizers of every supported
 * component) are a good starting corpus.
 */
#include "tokenizer/tokenizer_impl.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(x)                                                                 \
    do {                                                                              \
        if (!(x)) {                                                                   \
            fprintf(stderr, "fuzz_tokenizer_json: check failed at line %d: %s (%s)\n", \
                    __LINE__, #x, lp_last_error());                                   \
            abort();                                                                  \
        }                                                                             \
    } while (0)

static void roundtrip(const lp_tokenizer *t, const char *s, size_t n) {
    int32_t *ids = NULL;
    int64_t m = 0;
    lp_status st = lp_tokenizer_encode(t, s, n, (int)(n & 1), &ids, &m);
    if (st != LP_OK) {
        /* valid outcomes: a character the model cannot encode (unk_token
         * missing from the vocabulary: HF errors too), or a fuzzed regex
         * that exceeds PCRE2's match limit */
        FUZZ_CHECK((st == LP_ERR_FORMAT || st == LP_ERR_UNSUPPORTED) && ids == NULL);
        return;
    }
    for (int64_t i = 0; i < m; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < lp_tokenizer_vocab_size(t));
    char *dec = NULL;
    size_t dl = 0;
    FUZZ_CHECK(lp_tokenizer_decode(t, ids, m, &dec, &dl) == LP_OK && dec);
    free(dec);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lp_tokenizer *t = NULL;
    lp_status st = lp_tokenizer_load_buffer((const char *)data, size, "fuzz.json", &t);
    if (st != LP_OK) {
        FUZZ_CHECK(t == NULL && strncmp(lp_last_error(), "fuzz.json", 9) == 0);
        return 0;
    }
    static const char *texts[] = {"", "a", "Hello world", "  two  spaces ", "caf\xc3\xa9 e\xcc\x81",
                                  "<s>x</s><unk>", "\xf0\x9f\x98\x80 \xe4\xb8\xad 123 don't"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) roundtrip(t, texts[i], strlen(texts[i]));
    if (lp_utf8_valid((const char *)data, size, NULL)) roundtrip(t, (const char *)data, size < 512 ? size : 512);
    int64_t V = lp_tokenizer_vocab_size(t);
    for (int32_t id = 0; id < 256 && id < V; id++) {
        char *dec = NULL;
        size_t dl = 0;
        st = lp_tokenizer_decode(t, &id, 1, &dec, &dl);
        FUZZ_CHECK(st == LP_OK && dec && (dl == 0 || lp_tokenizer_token_text(t, id, NULL)));
        free(dec);
    }
    lp_tokenizer_free(t);
    return 0;
}
