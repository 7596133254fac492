/*
 * act.c - the activation switch (llmpress/model.h): whether products run
 * with f32 activations (the reference), 8-bit ones for decode steps (q8),
 * or 8-bit ones for every product (q8-all).
 *
 * Why a file of its own: every format with an 8-bit product (qgroup.c,
 * ggml.c) asks it, and it belongs to none of them.
 * Design: one process-wide int, read with acquire / written with release
 * atomics; LP_ACT is read on first use only.
 */
#include "llmpress/model.h"

#include <stdlib.h>
#include <string.h>

/* -1 until first asked, then LP_ACT's answer or what lp_set_activations said. */
static int g_act = -1;

static const char *const ACT_NAMES[] = {"f32", "q8", "q8-all"};

const char *lp_act_name(lp_act a) { return (unsigned)a < 3 ? ACT_NAMES[a] : "?"; }

bool lp_act_from_name(const char *s, lp_act *out) {
    for (int i = 0; i < 3; i++)
        if (s && !strcmp(s, ACT_NAMES[i])) {
            *out = (lp_act)i;
            return true;
        }
    return false;
}

lp_act lp_activations(void) {
    int v = __atomic_load_n(&g_act, __ATOMIC_ACQUIRE);
    if (v < 0) {
        lp_act a = LP_ACT_F32;
        (void)lp_act_from_name(getenv("LP_ACT"), &a); /* unset or another value: f32 */
        v = (int)a;
        __atomic_store_n(&g_act, v, __ATOMIC_RELEASE);
    }
    return (lp_act)v;
}

void lp_set_activations(lp_act a) { __atomic_store_n(&g_act, (int)a, __ATOMIC_RELEASE); }
bool lp_q8_activations(void) { return lp_activations() != LP_ACT_F32; }
void lp_set_q8_activations(bool on) { lp_set_activations(on ? LP_ACT_Q8 : LP_ACT_F32); }
