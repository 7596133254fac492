/*
 * test_qgroup_pad.h - for the qgroup kernel tests: random values in the
 * padding of each row's last block (columns past cols), in whichever
 * layout holds it (get/put_block), which no kernel may let contribute.
 * Include after test.h.
 */
#ifndef LP_TEST_QGROUP_PAD_H
#define LP_TEST_QGROUP_PAD_H

#include "format/qgroup.h"

static inline void garble_qgroup_padding(lp_qgroup *w, unsigned long long *rng) {
    const unsigned maxq = (1u << w->bits) - 1u;
    const int64_t used = w->cols - (w->blocks - 1) * LP_QGROUP_BLOCK;
    for (int64_t r = 0; r < w->rows; r++) {
        uint8_t v[LP_QGROUP_BLOCK];
        lp_qgroup_get_block(w, r, w->blocks - 1, v);
        for (int64_t j = used; j < LP_QGROUP_BLOCK; j++) v[j] = (uint8_t)(test_rand_u64(rng) & maxq);
        lp_qgroup_put_block(w, r, w->blocks - 1, v);
    }
}

#endif
