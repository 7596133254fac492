/*
 * test_tokenizer.c - tokenizer unit tests.
 *
 * Known encodings of the Llama (SentencePiece-style BPE) and Qwen2.5
 * (byte-level BPE) tokenizers, taken from Hugging Face tokenizers 0.23 on
 * the same files; the synthetic tokenizers of tests/data/tok_synth (made by
 * scripts/make_tok_synth.py, answers from HF); errors for unsupported or
 * corrupt files and bad input; NFC/NFD against Python's unicodedata;
 * llama2.c's tokenizer against a direct transcription of run.c's quadratic
 * merge loop; concurrent encodes. Whole-corpus parity is in
 * tests/parity/test_tokenizer_parity.c.
 */
#include "llmpress/tokenizer.h"
#include "io/json.h"
#include "tokenizer/tokenizer_impl.h"
#include "test.h"

#include <stdint.h>

typedef struct {
    const char *text; /* NULL: the long-spaces case built at run time */
    int32_t ids[72];  /* add_special = 0, ends with -1 */
    int32_t sp[72];   /* add_special = 1, ends with -1 */
    const char *dec;  /* HF's decode(ids, skip_special_tokens=False) */
} tok_case;

static const tok_case LLAMA_CASES[] = {
    {"Hello world",
     {15043, 3186, -1},
     {1, 15043, 3186, -1},
     "Hello world"},
    {" Hello world",
     {259, 10994, 3186, -1},
     {1, 259, 10994, 3186, -1},
     " Hello world"},
    {"",
     {-1},
     {1, -1},
     ""},
    {"<s>Hello",
     {1, 15043, -1},
     {1, 1, 15043, -1},
     "<s> Hello"},
    {"Hello<s>world",
     {15043, 1, 3186, -1},
     {1, 15043, 1, 3186, -1},
     "Hello<s> world"},
    {"<s><s>",
     {1, 1, -1},
     {1, 1, 1, -1},
     "<s><s>"},
    {" <s>",
     {259, 1, -1},
     {1, 259, 1, -1},
     " <s>"},
    {"don't I'LL we've",
     {1016, 29915, 29873, 306, 29915, 2208, 591, 29915, 345, -1},
     {1, 1016, 29915, 29873, 306, 29915, 2208, 591, 29915, 345, -1},
     "don't I'LL we've"},
    {"a\314\201",
     {263, 30103, -1},
     {1, 263, 30103, -1},
     "a\314\201"},
    {"\342\204\253",
     {29871, 229, 135, 174, -1},
     {1, 29871, 229, 135, 174, -1},
     "\342\204\253"},
    {"\341\240\216",
     {29871, 228, 163, 145, -1},
     {1, 29871, 228, 163, 145, -1},
     "\341\240\216"},
    {"x \341\240\216 y",
     {921, 29871, 228, 163, 145, 343, -1},
     {1, 921, 29871, 228, 163, 145, 343, -1},
     "x \341\240\216 y"},
    {"\360\235\224\230",
     {29871, 243, 160, 151, 155, -1},
     {1, 29871, 243, 160, 151, 155, -1},
     "\360\235\224\230"},
    {"\360\237\221\215\360\237\217\275",
     {29871, 243, 162, 148, 144, 243, 162, 146, 192, -1},
     {1, 29871, 243, 162, 148, 144, 243, 162, 146, 192, -1},
     "\360\237\221\215\360\237\217\275"},
    {"x<|endoftext|>y",
     {921, 29966, 29989, 355, 974, 726, 29989, 29958, 29891, -1},
     {1, 921, 29966, 29989, 355, 974, 726, 29989, 29958, 29891, -1},
     "x<|endoftext|>y"},
    {"<|im_start|>user\012hi<|im_end|>\012",
     {529, 29989, 326, 29918, 2962, 29989, 29958, 1792, 13, 2918, 29966, 29989, 326, 29918, 355, 29989, 29958, 13, -1},
     {1, 529, 29989, 326, 29918, 2962, 29989, 29958, 1792, 13, 2918, 29966, 29989, 326, 29918, 355, 29989, 29958, 13, -1},
     "<|im_start|>user\012hi<|im_end|>\012"},
    {"\011\011 \012 \015\012  ",
     {29871, 12, 12, 29871, 13, 6756, 13, 259, -1},
     {1, 29871, 12, 12, 29871, 13, 6756, 13, 259, -1},
     "\011\011 \012 \015\012  "},
    {"\342\226\201\342\226\201x",
     {259, 921, -1},
     {1, 259, 921, -1},
     "  x"},
    {"<0x0A>",
     {529, 29900, 29916, 29900, 29909, 29958, -1},
     {1, 529, 29900, 29916, 29900, 29909, 29958, -1},
     "<0x0A>"},
    {"1234567890",
     {29871, 29896, 29906, 29941, 29946, 29945, 29953, 29955, 29947, 29929, 29900, -1},
     {1, 29871, 29896, 29906, 29941, 29946, 29945, 29953, 29955, 29947, 29929, 29900, -1},
     "1234567890"},
    {"\305\277 '\305\277 K",
     {29871, 30473, 525, 30473, 476, -1},
     {1, 29871, 30473, 525, 30473, 476, -1},
     "\305\277 '\305\277 K"},
    {"\341\204\200\341\205\241\341\206\250",
     {29871, 228, 135, 131, 228, 136, 164, 228, 137, 171, -1},
     {1, 29871, 228, 135, 131, 228, 136, 164, 228, 137, 171, -1},
     "\341\204\200\341\205\241\341\206\250"},
    {NULL /* "a" + 1000 spaces + "b" */,
     {263, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 308, 29890, -1},
     {1, 263, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 462, 308, 29890, -1},
     NULL},
};
static const tok_case QWEN_CASES[] = {
    {"Hello world",
     {9707, 1879, -1},
     {9707, 1879, -1},
     "Hello world"},
    {" Hello world",
     {21927, 1879, -1},
     {21927, 1879, -1},
     " Hello world"},
    {"",
     {-1},
     {-1},
     ""},
    {"<s>Hello",
     {44047, 79497, -1},
     {44047, 79497, -1},
     "<s>Hello"},
    {"Hello<s>world",
     {9707, 44047, 29, 14615, -1},
     {9707, 44047, 29, 14615, -1},
     "Hello<s>world"},
    {"<s><s>",
     {44047, 1784, 82, 29, -1},
     {44047, 1784, 82, 29, -1},
     "<s><s>"},
    {" <s>",
     {366, 82, 29, -1},
     {366, 82, 29, -1},
     " <s>"},
    {"don't I'LL we've",
     {15007, 944, 358, 6, 4086, 582, 3003, -1},
     {15007, 944, 358, 6, 4086, 582, 3003, -1},
     "don't I'LL we've"},
    {"a\314\201",
     {1953, -1},
     {1953, -1},
     "\303\241"},
    {"\342\204\253",
     {144044, -1},
     {144044, -1},
     "\303\205"},
    {"\341\240\216",
     {123970, 236, -1},
     {123970, 236, -1},
     "\341\240\216"},
    {"x \341\240\216 y",
     {87, 86089, 254, 236, 379, -1},
     {87, 86089, 254, 236, 379, -1},
     "x \341\240\216 y"},
    {"\360\235\224\230",
     {124026, 246, -1},
     {124026, 246, -1},
     "\360\235\224\230"},
    {"\360\237\221\215\360\237\217\275",
     {144349, 145375, -1},
     {144349, 145375, -1},
     "\360\237\221\215\360\237\217\275"},
    {"x<|endoftext|>y",
     {87, 151643, 88, -1},
     {87, 151643, 88, -1},
     "x<|endoftext|>y"},
    {"<|im_start|>user\012hi<|im_end|>\012",
     {151644, 872, 198, 6023, 151645, 198, -1},
     {151644, 872, 198, 6023, 151645, 198, -1},
     "<|im_start|>user\012hi<|im_end|>\012"},
    {"\011\011 \012 \015\012  ",
     {38812, 2529, 256, -1},
     {38812, 2529, 256, -1},
     "\011\011 \012 \015\012  "},
    {"\342\226\201\342\226\201x",
     {10417, 223, 10417, 223, 87, -1},
     {10417, 223, 10417, 223, 87, -1},
     "\342\226\201\342\226\201x"},
    {"<0x0A>",
     {27, 15, 87, 15, 32, 29, -1},
     {27, 15, 87, 15, 32, 29, -1},
     "<0x0A>"},
    {"1234567890",
     {16, 17, 18, 19, 20, 21, 22, 23, 24, 15, -1},
     {16, 17, 18, 19, 20, 21, 22, 23, 24, 15, -1},
     "1234567890"},
    {"\305\277 '\305\277 K",
     {144815, 364, 144815, 730, -1},
     {144815, 364, 144815, 730, -1},
     "\305\277 '\305\277 K"},
    {"\341\204\200\341\205\241\341\206\250",
     {126317, -1},
     {126317, -1},
     "\352\260\201"},
    {NULL /* "a" + 1000 spaces + "b" */,
     {64, 56940, 56940, 56940, 56940, 56940, 56940, 56940, 5238, 2559, 293, -1},
     {64, 56940, 56940, 56940, 56940, 56940, 56940, 56940, 5238, 2559, 293, -1},
     NULL},
};

/* input, NFC, NFD (from Python's unicodedata; the last one by hand: HF's
 * Unicode 9 tables do not know U+1E130 (Unicode 12, class 230), so it is not
 * reordered after U+0316 (class 220) as current Unicode would) */
static const char *NFC_CASES[][3] = {
    {"a\360\236\204\260\314\226", "a\360\236\204\260\314\226", "a\360\236\204\260\314\226"},
    {"e\314\201", "\303\251", "e\314\201"},
    {"\342\204\253", "\303\205", "A\314\212"},
    {"\341\204\200\341\205\241\341\206\250", "\352\260\201", "\341\204\200\341\205\241\341\206\250"},
    {"\341\272\233\314\243", "\341\272\233\314\243", "\305\277\314\243\314\207"},
    {"a\314\243\314\201b\314\201\314\243", "\341\272\241\314\201\341\270\205\314\201", "a\314\243\314\201b\314\243\314\201"},
    {"\314\201a", "\314\201a", "\314\201a"},
    {"\352\260\200\341\206\250", "\352\260\201", "\341\204\200\341\205\241\341\206\250"},
    {"\303\251\314\243", "\341\272\271\314\201", "e\314\243\314\201"},
    {"Ti\341\272\277ng Vi\341\273\207t", "Ti\341\272\277ng Vi\341\273\207t", "Tie\314\202\314\201ng Vie\314\243\314\202t"},
    {"\340\255\207\340\254\276", "\340\255\213", "\340\255\207\340\254\276"},
    {"abc", "abc", "abc"},
};

static char *long_case(size_t *len) {
    /* "a" + 1000 spaces + "b" */
    char *s = malloc(1003);
    s[0] = 'a';
    memset(s + 1, ' ', 1000);
    s[1001] = 'b';
    s[1002] = 0;
    *len = 1002;
    return s;
}

static int ids_equal(const int32_t *a, int64_t na, const int32_t *want) {
    int64_t n = 0;
    while (want[n] >= 0) n++;
    if (n != na) return 0;
    for (int64_t i = 0; i < n; i++)
        if (a[i] != want[i]) return 0;
    return 1;
}

static void print_ids(const char *tag, const int32_t *ids, int64_t n) {
    fprintf(stderr, "  %s:", tag);
    for (int64_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

static void check_cases(const lp_tokenizer *t, const char *name, const tok_case *cs, size_t nc) {
    for (size_t c = 0; c < nc; c++) {
        size_t len = cs[c].text ? strlen(cs[c].text) : 0;
        char *owned = cs[c].text ? NULL : long_case(&len);
        const char *text = cs[c].text ? cs[c].text : owned;
        for (int sp = 0; sp < 2; sp++) {
            int32_t *ids = NULL;
            int64_t n = -1;
            CHECK_OK(lp_tokenizer_encode(t, text, len, sp, &ids, &n));
            const int32_t *want = sp ? cs[c].sp : cs[c].ids;
            int ok = ids_equal(ids, n, want);
            CHECKF(ok, "%s case %zu (add_special=%d): ids differ from HF", name, c, sp);
            if (!ok) {
                print_ids("ours", ids, n);
                int64_t m = 0;
                while (want[m] >= 0) m++;
                print_ids("hf  ", want, m);
            }
            if (!sp && cs[c].dec) {
                char *out = NULL;
                size_t ol = 0;
                CHECK_OK(lp_tokenizer_decode(t, ids, n, &out, &ol));
                CHECKF(out && ol == strlen(cs[c].dec) && !memcmp(out, cs[c].dec, ol),
                       "%s case %zu: decode gives \"%s\", HF \"%s\"", name, c, out ? out : "", cs[c].dec);
                free(out);
            }
            if (!sp && !cs[c].text) { /* the long case round-trips */
                char *out = NULL;
                size_t ol = 0;
                CHECK_OK(lp_tokenizer_decode(t, ids, n, &out, &ol));
                CHECK(out && ol == len && !memcmp(out, text, len));
                free(out);
            }
            free(ids);
        }
        free(owned);
    }
}

/* ------------------------------------------------ synthetic tokenizers */

static void check_synth(void) {
    char path[4096];
    lp_json_doc *cd = NULL, *rd = NULL;
    snprintf(path, sizeof path, "%s", test_data("tok_synth/cases.json"));
    if (lp_json_parse_file(path, &cd) != LP_OK) {
        fprintf(stderr, "cannot read %s: %s\n", path, lp_last_error());
        lp_test_failures++;
        return;
    }
    CHECK_OK(lp_json_parse_file(test_data("tok_synth/expected.json"), &rd));
    if (!rd) {
        lp_json_free(cd);
        return;
    }
    const lp_json *cases = lp_json_root(cd), *ref = lp_json_root(rd);
    int checks = 0;
    for (int64_t s = 0; s < cases->n; s++) {
        char file[64];
        snprintf(file, sizeof file, "tok_synth/%s.json", cases->keys[s]);
        lp_tokenizer *t = NULL;
        CHECK_OK(lp_tokenizer_load(test_data(file), &t));
        if (!t) continue;
        const lp_json *cs = &cases->items[s], *r = lp_json_get(ref, cases->keys[s]);
        for (int sp = 0; sp < 2; sp++) {
            const lp_json *E = lp_json_get(r, sp ? "enc_sp" : "enc"), *D = lp_json_get(r, sp ? "dec_sp" : "dec");
            for (int64_t i = 0; i < cs->n; i++) {
                const lp_json *c = &cs->items[i], *e = &E->items[i], *d = &D->items[i];
                int32_t *ids = NULL;
                int64_t n = 0;
                checks++;
                CHECK_OK(lp_tokenizer_encode(t, c->str, c->len, sp, &ids, &n));
                int ok = n == e->n;
                for (int64_t k = 0; ok && k < n; k++) ok = ids[k] == e->items[k].i64;
                CHECKF(ok, "%s \"%s\" add_special=%d: ids differ from HF", cases->keys[s], c->str, sp);
                if (ok && d->type == LP_JSON_STRING) {
                    char *txt = NULL;
                    size_t tl = 0;
                    CHECK_OK(lp_tokenizer_decode(t, ids, n, &txt, &tl));
                    CHECKF(txt && tl == d->len && !memcmp(txt, d->str, tl),
                           "%s \"%s\": decode \"%s\", HF \"%s\"", cases->keys[s], c->str,
                           txt ? txt : "", d->str);
                    free(txt);
                }
                free(ids);
            }
        }
        /* random id sequences through the decoder chain */
        const lp_json *ri = lp_json_get(r, "rand_ids"), *rdd = lp_json_get(r, "rand_dec");
        for (int64_t i = 0; i < ri->n; i++) {
            if (rdd->items[i].type != LP_JSON_STRING) continue; /* HF itself panicked */
            int32_t ids[16];
            int64_t n = ri->items[i].n;
            for (int64_t k = 0; k < n; k++) ids[k] = (int32_t)ri->items[i].items[k].i64;
            char *txt = NULL;
            size_t tl = 0;
            checks++;
            CHECK_OK(lp_tokenizer_decode(t, ids, n, &txt, &tl));
            CHECKF(txt && tl == rdd->items[i].len && !memcmp(txt, rdd->items[i].str, tl),
                   "%s random ids #%lld: decode \"%s\", HF \"%s\"", cases->keys[s], (long long)i,
                   txt ? txt : "", rdd->items[i].str);
            free(txt);
        }
        lp_tokenizer_free(t);
    }
    CHECK(checks > 1000);
    lp_json_free(cd);
    lp_json_free(rd);
}

/* ----------------------------------------------------------- errors */

static void expect_load_error(const char *json, lp_status want, const char *needle) {
    lp_tokenizer *t = NULL;
    lp_status st = lp_tokenizer_load_buffer(json, strlen(json), "bad.json", &t);
    CHECKF(st == want, "loading %s: status %s, expected %s (%s)", json, lp_status_name(st),
           lp_status_name(want), lp_last_error());
    CHECKF(strstr(lp_last_error(), needle) && strstr(lp_last_error(), "bad.json"),
           "message \"%s\" should name bad.json and '%s'", lp_last_error(), needle);
    CHECK(t == NULL);
    lp_tokenizer_free(t);
}

#define MODEL_OK "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]}"

static void check_errors(void) {
    expect_load_error("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", LP_ERR_UNSUPPORTED,
                      "WordPiece");
    expect_load_error("{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}", LP_ERR_UNSUPPORTED,
                      "Unigram");
    expect_load_error("{\"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}", LP_ERR_UNSUPPORTED,
                      "WordLevel");
    expect_load_error("{\"normalizer\": {\"type\": \"Lowercase\"}, " MODEL_OK "}", LP_ERR_UNSUPPORTED,
                      "Lowercase");
    expect_load_error("{\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFKC\"}]}, "
                      MODEL_OK "}", LP_ERR_UNSUPPORTED, "NFKC");
    expect_load_error("{\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, " MODEL_OK "}",
                      LP_ERR_UNSUPPORTED, "BertPreTokenizer");
    expect_load_error("{\"decoder\": {\"type\": \"WordPiece\", \"prefix\": \"##\"}, " MODEL_OK "}",
                      LP_ERR_UNSUPPORTED, "WordPiece");
    expect_load_error("{\"post_processor\": {\"type\": \"Magic\"}, " MODEL_OK "}", LP_ERR_UNSUPPORTED,
                      "Magic");
    expect_load_error("{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, "
                      "\"behavior\": \"Isolated\", \"invert\": false}, " MODEL_OK "}",
                      LP_ERR_UNSUPPORTED, "Split");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}",
                      LP_ERR_FORMAT, "merges[0]");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a a a\"]}}",
                      LP_ERR_FORMAT, "merges[0]");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3}, \"merges\": []}}",
                      LP_ERR_FORMAT, "vocab entry");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", LP_ERR_FORMAT, "merges");
    /* a bad id is shown as written: 3.5 is not "4" (nor -1), 3.0 is not "3" */
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 3.5}, \"merges\": []}}",
                      LP_ERR_FORMAT, "vocab entry \"b\" has id 3.5, expected an integer");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 3.0}, \"merges\": []}}",
                      LP_ERR_FORMAT, "has id 3.0,");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0.1}, \"merges\": []}}",
                      LP_ERR_FORMAT, "has id 0.1,");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"7\"}, \"merges\": []}}",
                      LP_ERR_FORMAT, "has id \"7\",");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 1e300}, \"merges\": []}}",
                      LP_ERR_FORMAT, "has id 1e+300,");
    /* added_tokens: HF reads "id" as a u32 */
    expect_load_error("{\"added_tokens\": [{\"id\": 3.5, \"content\": \"<s>\", \"special\": true}], " MODEL_OK "}",
                      LP_ERR_FORMAT, "added_tokens[0] has id 3.5");
    expect_load_error("{\"added_tokens\": [{\"id\": -1, \"content\": \"<s>\"}], " MODEL_OK "}",
                      LP_ERR_FORMAT, "added_tokens[0] has id -1");
    /* post-processor and decoder ids */
    expect_load_error("{\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": "
                      "{\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], "
                      "\"pair\": [], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [1.5], \"tokens\": "
                      "[\"<s>\"]}}}, " MODEL_OK "}", LP_ERR_FORMAT, "has id 1.5, expected an integer in [0, 3)");
    expect_load_error("{\"post_processor\": {\"type\": \"BertProcessing\", \"cls\": [\"a\", 0], \"sep\": "
                      "[\"b\", 2.5]}, " MODEL_OK "}", LP_ERR_FORMAT, "ids 0/2.5");
    expect_load_error("{\"decoder\": {\"type\": \"Strip\", \"content\": \" \", \"start\": 1.5, \"stop\": 0}, "
                      MODEL_OK "}", LP_ERR_FORMAT, "Strip start/stop 1.5/0");
    expect_load_error("{\"model\": ", LP_ERR_FORMAT, "");
    expect_load_error("", LP_ERR_FORMAT, "too short");
    /* llama2.c: max_token_length 16, token 0 claims 5 bytes but 2 remain */
    static const char trunc[] = "\x10\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00" "ab";
    lp_tokenizer *tt = NULL;
    CHECK(lp_tokenizer_load_buffer(trunc, sizeof(trunc) - 1, "bad.bin", &tt) == LP_ERR_FORMAT && !tt);
    CHECKF(strstr(lp_last_error(), "token 0 has length 5"), "%s", lp_last_error());

    /* a minimal good one, then bad input to it */
    const char *good = "{" MODEL_OK "}";
    lp_tokenizer *t = NULL;
    CHECK_OK(lp_tokenizer_load_buffer(good, strlen(good), "good.json", &t));
    if (t) {
        int32_t *ids = NULL;
        int64_t n = 0;
        CHECK_OK(lp_tokenizer_encode(t, "abab", 4, 0, &ids, &n));
        CHECK(n == 2 && ids && ids[0] == 2 && ids[1] == 2);
        free(ids);
        static const char *bad[] = {"ab\xff", "ab\xc0\x80", "ab\xed\xa0\x80", "ab\xe2\x82", "ab\xf4\x90\x80\x80"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            ids = (int32_t *)1;
            lp_status st = lp_tokenizer_encode(t, bad[i], strlen(bad[i]), 0, &ids, &n);
            CHECKF(st == LP_ERR_FORMAT && strstr(lp_last_error(), "byte offset 2"),
                   "invalid UTF-8 #%zu: %s / %s", i, lp_status_name(st), lp_last_error());
            CHECK(ids == NULL && n == 0);
        }
        int32_t oob[] = {0, 3};
        char *txt = NULL;
        size_t tl = 0;
        CHECK(lp_tokenizer_decode(t, oob, 2, &txt, &tl) == LP_ERR_ARG && txt == NULL);
        CHECK(strstr(lp_last_error(), "id 3"));
        int32_t neg[] = {-1};
        CHECK(lp_tokenizer_decode(t, neg, 1, &txt, &tl) == LP_ERR_ARG);
        CHECK_OK(lp_tokenizer_decode(t, NULL, 0, &txt, &tl));
        CHECK(txt && tl == 0 && txt[0] == 0);
        free(txt);
        CHECK(lp_tokenizer_token_id(t, "ab", 2) == 2 && lp_tokenizer_token_id(t, "zz", 2) == -1);
        CHECK(lp_tokenizer_token_text(t, 5, NULL) == NULL && lp_tokenizer_vocab_size(t) == 3);
        CHECK(lp_tokenizer_bos(t) == -1 && lp_tokenizer_eos(t) == -1);
    }
    lp_tokenizer_free(t);
    lp_tokenizer_free(NULL);
    t = NULL;
    CHECK(lp_tokenizer_load("/nonexistent/tokenizer.json", &t) == LP_ERR_IO && t == NULL);
    CHECK(lp_tokenizer_load(test_data("tok"), &t) == LP_ERR_IO && t == NULL); /* no tokenizer.json */
    CHECK(strstr(lp_last_error(), "no tokenizer.json"));
}

/* ------------------------------------------------------------ NFC/NFD */

static void check_nfc(void) {
    lp_tok_scratch sc;
    CHECK_OK(lp_scratch_init(&sc));
    for (size_t i = 0; i < sizeof(NFC_CASES) / sizeof(NFC_CASES[0]); i++) {
        for (int c = 0; c < 2; c++) {
            lp_tbuf out = {0};
            const char *in = NFC_CASES[i][0], *want = NFC_CASES[i][1 + c];
            CHECK_OK(lp_unicode_normalize(in, strlen(in), c == 0, &out, &sc));
            CHECKF(out.n == strlen(want) && !memcmp(out.p, want, out.n), "%s of case %zu", c ? "NFD" : "NFC", i);
            lp_tbuf_free(&out);
        }
    }
    lp_scratch_free(&sc);
}

/* ------------------------------------------------------- llama2.c */

/* run.c's encode, transcribed literally (quadratic): the specification. */
static int64_t l2c_reference(const lp_tokenizer *t, const char *text, int bos, int32_t *tok) {
    int64_t n = 0;
    if (bos) tok[n++] = 1;
    if (text[0]) tok[n++] = lp_tokenizer_token_id(t, " ", 1);
    char buf[8];
    size_t bl = 0;
    for (const char *c = text; *c; c++) {
        if ((*c & 0xC0) != 0x80) bl = 0;
        buf[bl++] = *c;
        if ((*(c + 1) & 0xC0) == 0x80 && bl < 4) continue;
        int32_t id = lp_tokenizer_token_id(t, buf, bl);
        if (id >= 0) tok[n++] = id;
        else
            for (size_t i = 0; i < bl; i++) tok[n++] = (unsigned char)buf[i] + 3;
        bl = 0;
    }
    for (;;) {
        float best = -1e10f;
        int32_t best_id = -1;
        int64_t best_i = -1;
        for (int64_t i = 0; i + 1 < n; i++) {
            char cat[256];
            size_t la, lb;
            const char *a = lp_tokenizer_token_text(t, tok[i], &la), *b = lp_tokenizer_token_text(t, tok[i + 1], &lb);
            if (la + lb > sizeof cat) continue;
            memcpy(cat, a, la);
            memcpy(cat + la, b, lb);
            int32_t id = lp_tokenizer_token_id(t, cat, la + lb);
            if (id >= 0 && t->scores[id] > best) {
                best = t->scores[id];
                best_id = id;
                best_i = i;
            }
        }
        if (best_i < 0) break;
        tok[best_i] = best_id;
        memmove(tok + best_i + 1, tok + best_i + 2, (size_t)(n - best_i - 2) * sizeof(int32_t));
        n--;
    }
    return n;
}

static void check_llama2c(void) {
    lp_tokenizer *t = NULL;
    CHECK_OK(lp_tokenizer_load(test_asset("models/stories260k/tok512.bin"), &t));
    if (!t) return;
    CHECK(lp_tokenizer_vocab_size(t) == 512 && lp_tokenizer_bos(t) == 1 && lp_tokenizer_eos(t) == 2);
    char *held = NULL;
    size_t hl = 0;
    FILE *f = fopen(test_asset("text/corpus/heldout.txt"), "rb");
    if (f) {
        held = malloc(3001);
        hl = fread(held, 1, 3000, f);
        while (hl && ((unsigned char)held[hl] & 0xC0) == 0x80) hl--; /* whole characters */
        held[hl] = 0;
        fclose(f);
    }
    const char *texts[] = {"Once upon a time, there was a little girl named Lily.", "", "a",
                           "She said: \"Don't go!\"\n\nThe end. \xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80",
                           "   spaces   ", held ? held : "x"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        for (int bos = 0; bos < 2; bos++) {
            size_t len = strlen(texts[i]);
            int32_t *ref = malloc((2 * len + 8) * 4 * sizeof(int32_t));
            int64_t nr = l2c_reference(t, texts[i], bos, ref);
            int32_t *ids = NULL;
            int64_t n = 0;
            CHECK_OK(lp_tokenizer_encode(t, texts[i], len, bos, &ids, &n));
            int ok = n == nr;
            for (int64_t k = 0; ok && k < n; k++) ok = ids[k] == ref[k];
            CHECKF(ok, "llama2.c text %zu (bos=%d): %lld ids, run.c gives %lld", i, bos, (long long)n,
                   (long long)nr);
            char *out = NULL;
            size_t ol = 0;
            CHECK_OK(lp_tokenizer_decode(t, ids, n, &out, &ol));
            /* run.c prints BOS as its text; without BOS the text comes back */
            if (!bos) CHECKF(out && ol == len && !memcmp(out, texts[i], len), "llama2.c round trip %zu", i);
            free(out);
            free(ids);
            free(ref);
        }
    }
    free(held);
    lp_tokenizer_free(t);
}

/* --------------------------------------------------- round trips, threads */

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

static void check_long_and_threads(const lp_tokenizer *t, const char *name) {
    /* 200k spaces then a word: one huge regex match / BPE word */
    size_t len = 200001;
    char *s = malloc(len + 1);
    memset(s, ' ', len - 1);
    s[len - 1] = 'x';
    s[len] = 0;
    int32_t *ids = NULL;
    int64_t n = 0;
    CHECK_OK(lp_tokenizer_encode(t, s, len, 0, &ids, &n));
    char *out = NULL;
    size_t ol = 0;
    CHECK_OK(lp_tokenizer_decode(t, ids, n, &out, &ol));
    CHECKF(out && ol == len && !memcmp(out, s, len), "%s: 200k spaces do not round-trip", name);
    free(out);
    free(ids);
    free(s);

    /* concurrent encodes of different slices agree with serial ones */
    size_t hl = 0;
    char *held = read_all(test_asset("text/corpus/heldout.txt"), &hl);
    if (!held) return;
    enum { K = 8 };
    size_t step = hl / K;
    int64_t serial[K], par[K];
    uint32_t hs[K], hp[K];
    for (int pass = 0; pass < 2; pass++) {
#pragma omp parallel for if (pass == 1) schedule(static, 1)
        for (int k = 0; k < K; k++) {
            size_t a = k * step, b = a + step;
            while (a > 0 && ((unsigned char)held[a] & 0xC0) == 0x80) a--;
            while (b < hl && ((unsigned char)held[b] & 0xC0) == 0x80) b++;
            int32_t *v = NULL;
            int64_t m = -1;
            uint32_t h = 2166136261u;
            if (lp_tokenizer_encode(t, held + a, b - a, 0, &v, &m) == LP_OK)
                for (int64_t i = 0; i < m; i++) h = (h ^ (uint32_t)v[i]) * 16777619u;
            (pass ? par : serial)[k] = m;
            (pass ? hp : hs)[k] = h;
            free(v);
        }
    }
    for (int k = 0; k < K; k++)
        CHECKF(serial[k] > 0 && serial[k] == par[k] && hs[k] == hp[k], "%s: thread slice %d differs", name, k);
    free(held);
}

int main(void) {
    check_errors();
    check_nfc();
    check_synth();

    lp_tokenizer *llama = NULL, *qwen = NULL;
    CHECK_OK(lp_tokenizer_load(test_asset("models/llama-25m"), &llama)); /* a directory */
    CHECK_OK(lp_tokenizer_load(test_asset("tokenizers/qwen2.5/tokenizer.json"), &qwen));
    if (llama) {
        CHECK(lp_tokenizer_vocab_size(llama) == 32000);
        CHECK(lp_tokenizer_bos(llama) == 1 && lp_tokenizer_eos(llama) == 2);
        CHECK(lp_tokenizer_is_special(llama, 1) && !lp_tokenizer_is_special(llama, 100));
        size_t l = 0;
        const char *s = lp_tokenizer_token_text(llama, 15043, &l);
        CHECK(s && l == 8 && !memcmp(s, "\xe2\x96\x81Hello", 8));
        CHECK(lp_tokenizer_token_id(llama, "<0x0A>", 6) == 13);
        check_cases(llama, "llama", LLAMA_CASES, sizeof(LLAMA_CASES) / sizeof(LLAMA_CASES[0]));
        check_long_and_threads(llama, "llama");
    }
    if (qwen) {
        CHECK(lp_tokenizer_vocab_size(qwen) == 151665);
        /* tokenizer_config.json: no BOS, EOS <|im_end|> */
        CHECK(lp_tokenizer_bos(qwen) == -1 && lp_tokenizer_eos(qwen) == 151645);
        CHECK(lp_tokenizer_is_special(qwen, 151643) && !lp_tokenizer_is_special(qwen, 151657));
        check_cases(qwen, "qwen", QWEN_CASES, sizeof(QWEN_CASES) / sizeof(QWEN_CASES[0]));
        check_long_and_threads(qwen, "qwen");
    }
    lp_tokenizer_free(llama);
    lp_tokenizer_free(qwen);
    check_llama2c();
    TEST_DONE();
}
