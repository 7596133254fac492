/*
 * tokenizer_gguf.h - a tokenizer to and from a GGUF file's tokenizer.ggml.*
 * keys (tokenizer_gguf.c says how each family maps).
 */
#ifndef LP_TOKENIZER_GGUF_H
#define LP_TOKENIZER_GGUF_H

#include "llmpress/tokenizer.h"
#include "io/gguf.h"

/* Add the tokenizer.ggml.* keys llama.cpp reads for t to w, n_vocab tokens
 * (the model's embedding rows: llama.cpp takes its vocabulary size from the
 * token list; ids without a token become "[PAD<id>]", unused). LP_ERR_ARG when
 * t has more ids; LP_ERR_UNSUPPORTED naming the tokenizer when llama.cpp has
 * no family or pre-tokenizer for it. */
lp_status lp_tokenizer_gguf_write(const lp_tokenizer *t, int64_t n_vocab, lp_gguf_writer *w);

/* The tokenizer a GGUF file describes, tokenizing as llama.cpp does. */
lp_status lp_tokenizer_from_gguf(const lp_gguf *g, lp_tokenizer **out);

#endif
