#!/usr/bin/env python3
"""Generate src/tokenizer/tokenizer_nfc_data.h: the Unicode tables NFC needs.

What: canonical combining classes, full canonical decompositions, primary
composites and an "NFC-unsafe" set (characters that can change under NFC).
Why:  Qwen2 / many byte-level tokenizers run an NFC normalizer first; we need
the tables in C without a dependency on ICU. They come from Python's own
unicodedata (the Unicode version is printed into the header).
Design: Hangul syllables are algorithmic and excluded here (handled in C).
HF tokenizers normalizes with the unicode-normalization-alignments crate,
whose tables are from Unicode 9.0: characters added later (combining marks of
newer scripts, e.g. U+1E130) are, for it, class-0 characters without a
decomposition. For parity we do the same with the characters listed in
HF_UNKNOWN, which `--probe` finds by asking HF tokenizers itself (on a machine
with `pip install tokenizers`): every character with a canonical
decomposition or a non-zero combining class that HF's NFD leaves alone.
Run:  python3 scripts/gen_unicode_nfc.py > src/tokenizer/tokenizer_nfc_data.h
      python3 scripts/gen_unicode_nfc.py --probe   # prints a new HF_UNKNOWN
"""
import sys
import unicodedata as ud

# Found with --probe against tokenizers 0.23.2 (Unicode 15 data in Python).
HF_UNKNOWN = {
    0x7FD, 0x898, 0x899, 0x89A, 0x89B, 0x89C, 0x89D, 0x89E, 0x89F, 0x8CA, 0x8CB, 0x8CC, 0x8CD,
    0x8CE, 0x8CF, 0x8D0, 0x8D1, 0x8D2, 0x8D3, 0x9FE, 0xC3C, 0xD3B, 0xD3C, 0xEBA, 0x1715, 0x1ABF,
    0x1AC0, 0x1AC1, 0x1AC2, 0x1AC3, 0x1AC4, 0x1AC5, 0x1AC6, 0x1AC7, 0x1AC8, 0x1AC9, 0x1ACA,
    0x1ACB, 0x1ACC, 0x1ACD, 0x1ACE, 0x1DF6, 0x1DF7, 0x1DF8, 0x1DF9, 0x1DFA, 0xA82C, 0x10D24,
    0x10D25, 0x10D26, 0x10D27, 0x10EAB, 0x10EAC, 0x10EFD, 0x10EFE, 0x10EFF, 0x10F46, 0x10F47,
    0x10F48, 0x10F49, 0x10F4A, 0x10F4B, 0x10F4C, 0x10F4D, 0x10F4E, 0x10F4F, 0x10F50, 0x10F82,
    0x10F83, 0x10F84, 0x10F85, 0x11070, 0x1133B, 0x1145E, 0x11839, 0x1183A, 0x11938, 0x1193D,
    0x1193E, 0x11943, 0x119E0, 0x11A34, 0x11A47, 0x11A99, 0x11D42, 0x11D44, 0x11D45, 0x11D97,
    0x11F41, 0x11F42, 0x16FF0, 0x16FF1, 0x1E08F, 0x1E130, 0x1E131, 0x1E132, 0x1E133, 0x1E134,
    0x1E135, 0x1E136, 0x1E2AE, 0x1E2EC, 0x1E2ED, 0x1E2EE, 0x1E2EF, 0x1E4EC, 0x1E4ED, 0x1E4EE,
    0x1E4EF
}


def probe():
    """Characters HF's normalizer does not know (see the module docstring)."""
    from tokenizers.normalizers import NFD
    nfd = NFD().normalize_str
    unknown = []
    for c in range(0x110000):
        if 0xD800 <= c < 0xE000:
            continue
        ch = chr(c)
        d = ud.decomposition(ch)
        k = ud.combining(ch)
        if d and not d.startswith("<"):
            known = nfd(ch) != ch
        elif k > 1:  # a known mark moves after U+0334 (class 1)
            known = nfd(ch + "\u0334") == "\u0334" + ch
        elif k == 1:  # a known class-1 mark moves before U+0301 (class 230)
            known = nfd("\u0301" + ch) == ch + "\u0301"
        else:
            continue
        if not known:
            unknown.append(c)
    print(", ".join("0x%X" % c for c in unknown))

MAXCP = 0x110000


def is_hangul_syllable(c):
    return 0xAC00 <= c < 0xAC00 + 11172


def main():
    ccc = [0] * MAXCP
    decomp = {}      # cp -> full canonical decomposition (list of cps)
    comps = {}       # (first, second) -> composite
    for c in range(MAXCP):
        if 0xD800 <= c < 0xE000:
            continue
        ch = chr(c)
        if c in HF_UNKNOWN:
            continue  # class 0, no decomposition, as in HF's Unicode 9 tables
        ccc[c] = ud.combining(ch)
        if is_hangul_syllable(c):
            continue
        d = ud.decomposition(ch)
        if not d or d.startswith("<"):
            continue
        full = [ord(x) for x in ud.normalize("NFD", ch)]
        if full != [c]:
            decomp[c] = full
        parts = [int(x, 16) for x in d.split()]
        # A primary composite: a two-character canonical decomposition that
        # NFC puts back together (composition exclusions fail this test).
        if len(parts) == 2 and ud.normalize("NFC", "".join(map(chr, parts))) == ch:
            comps[(parts[0], parts[1])] = c

    # Characters whose presence means the text may not already be NFC:
    # NFC_QC=No (NFC(c) != c), NFC_QC=Maybe (second of a composite), or a
    # non-zero combining class (may need reordering).
    unsafe = [False] * MAXCP
    for c in range(MAXCP):
        if 0xD800 <= c < 0xE000:
            continue
        if ccc[c] != 0:
            unsafe[c] = True
        elif c in decomp and ud.normalize("NFC", chr(c)) != chr(c):
            unsafe[c] = True
    for (a, b) in comps:
        unsafe[b] = True

    def ranges(pred, key=lambda c: 0):
        """Maximal runs of code points where pred holds and key is constant."""
        out, c = [], 0
        while c < MAXCP:
            if pred(c):
                s = c
                while c + 1 < MAXCP and pred(c + 1) and key(c + 1) == key(s):
                    c += 1
                out.append((s, c))
            c += 1
        return out

    w = sys.stdout.write
    w("/* tokenizer_nfc_data.h - GENERATED by scripts/gen_unicode_nfc.py from\n")
    w(" * Python's unicodedata (Unicode %s), less the %d characters HF's Unicode 9\n" % (ud.unidata_version, len(HF_UNKNOWN)))
    w(" * tables do not know. Do not edit by hand. */\n")
    w("#define LP_NFC_UNICODE_VERSION \"%s\"\n\n" % ud.unidata_version)

    cr = ranges(lambda c: ccc[c] != 0, lambda c: ccc[c])
    w("/* (first, last, combining class) for every run of equal non-zero class */\n")
    w("static const uint32_t lp_nfc_ccc[][3] = {\n")
    for i in range(0, len(cr), 4):
        w("    " + " ".join("{0x%X,0x%X,%d}," % (s, e, ccc[s]) for s, e in cr[i:i + 4]) + "\n")
    w("};\n\n")

    ur = ranges(lambda c: unsafe[c])
    w("/* (first, last): characters that may change under NFC */\n")
    w("static const uint32_t lp_nfc_unsafe[][2] = {\n")
    for i in range(0, len(ur), 6):
        w("    " + " ".join("{0x%X,0x%X}," % r for r in ur[i:i + 6]) + "\n")
    w("};\n\n")

    keys = sorted(decomp)
    pool = []
    w("/* (code point, offset into lp_nfc_decomp_pool, length), sorted */\n")
    w("static const uint32_t lp_nfc_decomp[][3] = {\n")
    items = []
    for c in keys:
        items.append("{0x%X,%d,%d}," % (c, len(pool), len(decomp[c])))
        pool.extend(decomp[c])
    for i in range(0, len(items), 5):
        w("    " + " ".join(items[i:i + 5]) + "\n")
    w("};\n\n")
    w("static const uint32_t lp_nfc_decomp_pool[] = {\n")
    for i in range(0, len(pool), 10):
        w("    " + " ".join("0x%X," % x for x in pool[i:i + 10]) + "\n")
    w("};\n\n")

    w("/* (first, second, composite), sorted by (first, second) */\n")
    w("static const uint32_t lp_nfc_comp[][3] = {\n")
    ck = sorted(comps)
    for i in range(0, len(ck), 4):
        w("    " + " ".join("{0x%X,0x%X,0x%X}," % (a, b, comps[(a, b)]) for a, b in ck[i:i + 4]) + "\n")
    w("};\n")


if __name__ == "__main__":
    if "--probe" in sys.argv:
        probe()
    else:
        main()
