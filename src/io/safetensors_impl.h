/*
 * safetensors_impl.h - private entry points of safetensors.c.
 *
 * lp_st_parse_impl validates a safetensors image that is already in memory.
 * lp_st_open maps a file and calls it; the fuzz harness calls it directly on
 * the fuzzer's buffer, so both exercise exactly the same checks.
 */
#ifndef LP_SAFETENSORS_IMPL_H
#define LP_SAFETENSORS_IMPL_H

#include "io/safetensors.h"

/* Parse size bytes at data (NULL allowed when size is 0). The returned file
 * does not own data: it must stay valid until lp_st_close(*out). `path`
 * names the image in error messages and is what lp_st_path returns. */
lp_status lp_st_parse_impl(const void *data, size_t size, const char *path, lp_st_file **out);

#endif
