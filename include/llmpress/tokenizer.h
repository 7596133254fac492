/*
 * tokenizer.h - text <-> token ids, with exact parity to Hugging Face
 * `tokenizers` for BPE tokenizer.json files.
 *
 * What: loads a tokenizer.json (SentencePiece-style BPE as in Llama 2, or
 * byte-level BPE as in GPT-2 / Llama 3 / Qwen2) or a llama2.c tokenizer.bin,
 * and encodes UTF-8 text to ids and ids back to text.
 * Why:  evaluation (perplexity on a text corpus, calibration data, generation)
 * needs the model's own tokenization, bit for bit: one different id shifts
 * every perplexity number. The unit and parity tests check ids against
 * fixtures produced by Hugging Face `tokenizers` itself.
 * Design: the pipeline is HF's: added tokens are split out first, then the
 * normalizer, the pre-tokenizer, the BPE model (with a word cache) and,
 * when add_special is set, the post-processor's template (e.g. BOS).
 * Unsupported components (WordPiece, Unigram, unknown normalizers...) fail at
 * load time with LP_ERR_UNSUPPORTED naming the file and the component.
 *
 * Thread safety: a loaded tokenizer may be used from several threads at
 * once; the word cache is used by one encode call at a time (others run
 * uncached rather than wait).
 */
#ifndef LLMPRESS_TOKENIZER_H
#define LLMPRESS_TOKENIZER_H

#include "llmpress/status.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lp_tokenizer lp_tokenizer;

/* Load from a tokenizer.json file, a llama2.c tokenizer .bin file, or a
 * directory holding tokenizer.json (or tokenizer.bin). BOS/EOS come from a
 * tokenizer_config.json next to the file when there is one. */
lp_status lp_tokenizer_load(const char *path, lp_tokenizer **out);
/* The same from memory: `name` is used in error messages only, and no
 * tokenizer_config.json is looked for (BOS is the post-processor's leading
 * special token, EOS a special token named </s>, <|endoftext|>, ...). */
lp_status lp_tokenizer_load_buffer(const char *data, size_t size, const char *name,
                                   lp_tokenizer **out);
void lp_tokenizer_free(lp_tokenizer *tok); /* NULL is a no-op */

/* Encode len bytes of UTF-8 text. add_special applies the post-processor
 * (e.g. prepends BOS for Llama; nothing for Qwen2). *ids is malloc'd (free()
 * it; it may be NULL when *n == 0). Invalid UTF-8 is LP_ERR_FORMAT with the
 * byte offset in the message. */
lp_status lp_tokenizer_encode(const lp_tokenizer *tok, const char *text, size_t len,
                              int add_special, int32_t **ids, int64_t *n);

/* Decode ids to UTF-8 text (special tokens are kept, as HF's
 * decode(skip_special_tokens=False)). *text is malloc'd and NUL-terminated,
 * *len excludes the NUL. An id outside [0, vocab size) is LP_ERR_ARG; an id
 * inside it that has no token (a gap in the vocabulary) is skipped, as HF. */
lp_status lp_tokenizer_decode(const lp_tokenizer *tok, const int32_t *ids, int64_t n,
                              char **text, size_t *len);

/* The raw vocabulary string of one id (e.g. "▁the", "Ġthe", "<0x0A>"), or
 * NULL when id has none. *len (if not NULL) gets its byte length. */
const char *lp_tokenizer_token_text(const lp_tokenizer *tok, int32_t id, size_t *len);

/* The id of an exact vocabulary or added-token string, or -1. */
int32_t lp_tokenizer_token_id(const lp_tokenizer *tok, const char *text, size_t len);

/* Number of ids (largest id + 1, added tokens included). */
int64_t lp_tokenizer_vocab_size(const lp_tokenizer *tok);

/* BOS / EOS ids, or -1 when the tokenizer has none. */
int32_t lp_tokenizer_bos(const lp_tokenizer *tok);
int32_t lp_tokenizer_eos(const lp_tokenizer *tok);

/* 1 when id is a special added token (<s>, <|endoftext|>...), else 0. */
int lp_tokenizer_is_special(const lp_tokenizer *tok, int32_t id);

#ifdef __cplusplus
}
#endif
#endif
