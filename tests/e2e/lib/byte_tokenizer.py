"""byte_tokenizer.py OUT - writes a byte-level tokenizer.json to OUT: 256 byte
tokens (ids 0..255), no merges, GPT-2's ByteLevel pre-tokenizer and decoder.
The e2e scripts give it to the tiny test models, which ship no tokenizer and
whose vocab holds at least 256 ids."""
import json
import sys

# GPT-2's byte -> printable character map: the ByteLevel pre-tokenizer's alphabet
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b)
        cs.append(256 + n)
        n += 1
level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
       "pre_tokenizer": level, "post_processor": None, "decoder": level,
       "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                 "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                 "vocab": {chr(c): b for b, c in zip(bs, cs)}, "merges": []}}
with open(sys.argv[1], "w", encoding="utf-8") as f:
    json.dump(tok, f, ensure_ascii=False)
