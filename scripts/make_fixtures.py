#!/usr/bin/env python3
"""make_fixtures.py - parity fixtures for llmpress, made with Hugging Face
transformers/tokenizers (run on the GPU machine; CPU f32 is used for exactness).

What it writes (under --out, committed to tests/data/):
  tok/<tok>__<text>.json      token-id fixtures: count, crc32 per 4096-id chunk,
                              the first 2000 ids (all ids for the stress text)
  models/tiny-mistral/        random-weight MistralForCausalLM, f16, untied head
  models/tiny-qwen2/          random-weight Qwen2ForCausalLM, bf16, qkv bias,
                              tied, sharded into several safetensors files
  models/tiny-llama3/         random-weight LlamaForCausalLM, f32, explicit
                              head_dim, attention_bias, llama3 rope scaling,
                              config written in the older key spelling
                              (rope_theta + rope_scaling + torch_dtype)
  parity/<model>.safetensors  input_ids, logits at chosen positions, and for
                              every position: max logit, argmax, logsumexp
  parity/ppl.json             llama-25m NLL sums on the first windows of
                              WikiText-2 test, GPTQ and llama.cpp protocols
  parity/generate.json        llama-25m greedy continuation of a prompt

Inputs come from --assets (a copy of ../shared/assets) and --stress.
Usage: python3 scripts/make_fixtures.py --assets DIR --stress tests/data/unicode_stress.txt --out OUT
"""
import argparse, json, os, zlib, struct, shutil, math

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer
import transformers
from transformers import (AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM,
                          MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
CHUNK = 4096


def read_text(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8")


def tok_fixture(tok_path, text, with_ids):
    tok = Tokenizer.from_file(tok_path)
    ids = tok.encode(text, add_special_tokens=False).ids
    crcs = []
    for k in range(0, len(ids), CHUNK):
        crcs.append(zlib.crc32(struct.pack("<%di" % len(ids[k:k + CHUNK]), *ids[k:k + CHUNK])))
    d = {"count": len(ids), "chunk": CHUNK, "crc32": crcs, "head": ids[:2000]}
    if with_ids:
        d["ids"] = ids
    d["decoded_equals_text"] = tok.decode(ids, skip_special_tokens=False) == text
    return d


def perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.08 * torch.randn(p.shape, generator=g))


def logits_of(model_dir, ids):
    m = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                             attn_implementation="eager")
    m.eval()
    with torch.no_grad():
        out = m(torch.tensor([ids])).logits[0].float()
    return out


def parity_file(path, ids, logits, positions):
    t = {
        "input_ids": torch.tensor(ids, dtype=torch.int32),
        "positions": torch.tensor(positions, dtype=torch.int32),
        "logits": logits[positions].contiguous(),
        "max": logits.max(dim=-1).values.contiguous(),
        "argmax": logits.argmax(dim=-1).to(torch.int32).contiguous(),
        "lse": torch.logsumexp(logits.double(), dim=-1).float().contiguous(),
    }
    save_file(t, path, metadata={"transformers": transformers.__version__,
                                 "torch": torch.__version__})


def make_tiny(out):
    os.makedirs(out, exist_ok=True)
    made = {}
    torch.manual_seed(1)
    cfg = MistralConfig(vocab_size=256, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                        sliding_window=None, tie_word_embeddings=False, rms_norm_eps=1e-6,
                        rope_theta=10000.0, bos_token_id=1, eos_token_id=2)
    m = MistralForCausalLM(cfg)
    perturb(m, 11)
    d = os.path.join(out, "tiny-mistral")
    m.to(torch.float16).save_pretrained(d)
    made["tiny-mistral"] = d

    torch.manual_seed(2)
    cfg = Qwen2Config(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, rms_norm_eps=1e-6, rope_theta=1000000.0,
                      use_sliding_window=False, bos_token_id=1, eos_token_id=2)
    m = Qwen2ForCausalLM(cfg)
    perturb(m, 12)
    d = os.path.join(out, "tiny-qwen2")
    m.to(torch.bfloat16).save_pretrained(d, max_shard_size="60KB")
    made["tiny-qwen2"] = d

    torch.manual_seed(3)
    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
    cfg = LlamaConfig(vocab_size=256, hidden_size=96, intermediate_size=192, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=1, head_dim=32,
                      max_position_embeddings=512, tie_word_embeddings=False, rms_norm_eps=1e-5,
                      attention_bias=True, rope_parameters=rope, bos_token_id=1, eos_token_id=2)
    m = LlamaForCausalLM(cfg)
    perturb(m, 13)
    d = os.path.join(out, "tiny-llama3")
    m.to(torch.float32).save_pretrained(d)
    # Rewrite the config in the older spelling real Llama 3.x checkpoints use.
    with open(os.path.join(d, "config.json")) as f:
        c = json.load(f)
    rp = c.pop("rope_parameters", None) or rope
    c["rope_theta"] = rp.pop("rope_theta")
    c["rope_scaling"] = rp
    if "dtype" in c:
        c["torch_dtype"] = c.pop("dtype")
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    made["tiny-llama3"] = d
    return made


def nll_windows(model, ids, ctx, nwin, llamacpp, bos):
    """Sum of NLL and count over the first nwin windows (see DESIGN.md 4)."""
    total, count = 0.0, 0
    per = []
    for w in range(nwin):
        chunk = list(ids[w * ctx:(w + 1) * ctx])
        if llamacpp:
            chunk[0] = bos
        with torch.no_grad():
            lg = model(torch.tensor([chunk])).logits[0].double()
        lp = torch.log_softmax(lg, dim=-1)
        first = ctx // 2 if llamacpp else 0
        tgt = torch.tensor(chunk[first + 1:])
        nll = -lp[first:ctx - 1].gather(1, tgt[:, None]).sum().item()
        total += nll
        count += len(tgt)
        per.append(nll)
    return total, count, per


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", required=True)
    ap.add_argument("--stress", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    A = a.assets
    texts = {"wiki_test": read_text(os.path.join(A, "text/wikitext-2-raw/wiki.test.raw")),
             "heldout": read_text(os.path.join(A, "text/corpus/heldout.txt")),
             "stress": read_text(a.stress)}
    toks = {"llama25m": os.path.join(A, "models/llama-25m/tokenizer.json"),
            "qwen25": os.path.join(A, "tokenizers/qwen2.5/tokenizer.json")}
    os.makedirs(os.path.join(a.out, "tok"), exist_ok=True)
    for tn, tp in toks.items():
        for xn, xt in texts.items():
            d = tok_fixture(tp, xt, xn == "stress")
            with open(os.path.join(a.out, "tok", f"{tn}__{xn}.json"), "w") as f:
                json.dump(d, f)
            print("tok", tn, xn, d["count"], "roundtrip", d["decoded_equals_text"], flush=True)

    pdir = os.path.join(a.out, "parity")
    os.makedirs(pdir, exist_ok=True)
    # llama-25m: a real sentence from heldout, 128 tokens.
    l25 = os.path.join(A, "models/llama-25m")
    ltok = Tokenizer.from_file(toks["llama25m"])
    ids = ltok.encode(texts["heldout"][:4000], add_special_tokens=False).ids[:127]
    ids = [1] + ids
    lg = logits_of(l25, ids)
    parity_file(os.path.join(pdir, "llama-25m.safetensors"), ids, lg, [0, 1, 7, 63, 126, 127])
    print("llama-25m logits", lg.shape, flush=True)

    g = torch.Generator().manual_seed(7)
    s260 = os.path.join(A, "models/stories260k")
    ids = [1] + torch.randint(3, 512, (63,), generator=g).tolist()
    lg = logits_of(s260, ids)
    parity_file(os.path.join(pdir, "stories260k.safetensors"), ids, lg, list(range(64)))

    made = make_tiny(os.path.join(a.out, "models"))
    for name, d in made.items():
        vocab = json.load(open(os.path.join(d, "config.json")))["vocab_size"]
        ids = torch.randint(0, vocab, (80,), generator=g).tolist()
        lg = logits_of(d, ids)
        parity_file(os.path.join(pdir, name + ".safetensors"), ids, lg, list(range(80)))
        print(name, "logits", lg.shape, flush=True)

    # Perplexity on the first windows of WikiText-2 test, both protocols.
    m = AutoModelForCausalLM.from_pretrained(l25, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    wid = ltok.encode(texts["wiki_test"], add_special_tokens=False).ids
    s, c, per = nll_windows(m, wid, 512, 4, False, 1)
    s2, c2, per2 = nll_windows(m, [1] + wid, 512, 4, True, 1)
    ppl = {"text": "wikitext-2-raw/wiki.test.raw", "ctx": 512, "windows": 4,
           "gptq": {"nll_sum": s, "count": c, "per_window": per, "ppl": math.exp(s / c)},
           "llamacpp": {"nll_sum": s2, "count": c2, "per_window": per2, "ppl": math.exp(s2 / c2)}}
    with open(os.path.join(pdir, "ppl.json"), "w") as f:
        json.dump(ppl, f, indent=1)
    print("ppl", ppl["gptq"]["ppl"], ppl["llamacpp"]["ppl"], flush=True)

    prompt = "The history of the city begins"
    pids = [1] + ltok.encode(prompt, add_special_tokens=False).ids
    with torch.no_grad():
        gen = m.generate(torch.tensor([pids]), max_new_tokens=32, do_sample=False)[0].tolist()
    with open(os.path.join(pdir, "generate.json"), "w") as f:
        json.dump({"prompt": prompt, "prompt_ids": pids, "output_ids": gen,
                   "text": ltok.decode(gen[len(pids):])}, f)
    print("generate", ltok.decode(gen), flush=True)


if __name__ == "__main__":
    main()
