#!/usr/bin/env python3
"""gptq_verify.py DIR REF_DIR - check a GPTQ checkpoint independently of llmpress.

What: DIR is a GPTQ checkpoint directory (config.json with quantization_config
  quant_method "gptq", model.safetensors with <base>.qweight / .qzeros /
  .scales / .g_idx per linear), e.g. written by `lp_export_gptq`. REF_DIR holds
  the same model's weights as dense f32 tensors <base>.weight (written by
  llmpress from the same quantized model), and, when it is a whole Hugging Face
  directory (config.json beside the weights), it is also the reference model.
  The script
    1. dequantizes every qweight with torch from the format's description
       alone (below) and compares it with REF_DIR's <base>.weight bit for bit;
    2. compares every other tensor (embedding, norms, biases, head) with
       REF_DIR's: DIR's 16-bit tensor must equal REF's rounded to that dtype;
    3. when REF_DIR is a whole model directory: runs it (f32) and the same
       model with DIR's dequantized weights and 16-bit tensors ("emulated"),
       and, when transformers can load DIR natively (that needs optimum with
       auto-gptq, or gptqmodel), the native GPTQ model too; compares logits.
  One JSON summary is printed on stdout; exit code 0 when every linear matched
  bit for bit and nothing was malformed, 1 otherwise, 2 on bad usage.
Why: llmpress's export and import are tested against each other in C; this is
  the same bytes read by code written only from the format's documentation
  (AutoGPTQ's QuantLinear.pack and its torch dequantization), run on the GPU
  machine beside transformers. It does not import llmpress.

The format (AutoGPTQ "gptq" checkpoints; N = out features, K = in features,
b = bits, G = groups):
  qweight int32 [K*b/32, N]: column n packs the K codes of output n along the
    input dimension. b = 2, 4, 8: word i holds codes 32i/b .. 32(i+1)/b - 1, the
    first in the lowest bits. b = 3: three words hold 32 codes: word 0 has
    v0..v9 at bits 3j and the low two bits of v10 at bits 30-31; word 1 has
    bit 2 of v10 at bit 0, v11..v20 at bits 3j+1 and the low bit of v21 at
    bit 31; word 2 has bits 1-2 of v21 at bits 0-1 and v22..v31 at bits 3j+2.
  qzeros int32 [G, N*b/32]: row g packs the N zero points the same way along
    the outputs; checkpoint_format "gptq" (v1) stores zero - 1, "gptq_v2" the
    zero itself.
  scales f16 [G, N]; g_idx int32 [K]: the group of each input column.
  W[n, k] = f32(scales[g_idx[k], n]) * f32(q[k, n] - zero[g_idx[k], n]), W out x in.

Usage on the GPU machine: python3 scripts/gptq_verify.py OUT/gptq OUT/ref
  [--device cuda|cpu] [--tokens 64] [--no-logits] [--ref-digests FILE] [--llmpress-nll FILE]
"""
import argparse
import json
import mmap
import os
import struct
import sys

import torch

DTYPES = {
    "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
    "I8": torch.int8, "U8": torch.uint8, "I16": torch.int16, "I32": torch.int32, "I64": torch.int64,
    "BOOL": torch.bool,
}
QSUFFIXES = (".qweight", ".qzeros", ".scales", ".g_idx")


class SafeDir:
    """The tensors of a checkpoint directory (model.safetensors, or the shards
    of model.safetensors.index.json, or every *.safetensors in it), read on demand."""

    def __init__(self, d):
        files = []
        idx = os.path.join(d, "model.safetensors.index.json")
        if os.path.isfile(idx):
            with open(idx) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
        elif os.path.isfile(os.path.join(d, "model.safetensors")):
            files = ["model.safetensors"]
        else:
            files = sorted(x for x in os.listdir(d) if x.endswith(".safetensors"))
        if not files:
            raise SystemExit(f"{d}: no safetensors files")
        self.where = {}
        self.maps = []
        for name in files:
            path = os.path.join(d, name)
            f = open(path, "rb")
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            n = struct.unpack("<Q", m[:8])[0]
            header = json.loads(m[8:8 + n])
            for k, v in header.items():
                if k != "__metadata__":
                    self.where[k] = (m, 8 + n, v, path)
            self.maps.append((f, m))

    def names(self):
        return list(self.where)

    def __contains__(self, name):
        return name in self.where

    def info(self, name):
        _, _, v, path = self.where[name]
        return v["dtype"], list(v["shape"]), path

    def get(self, name):
        m, base, v, path = self.where[name]
        a, b = v["data_offsets"]
        dt = DTYPES.get(v["dtype"])
        if dt is None:
            raise ValueError(f"{path}: tensor {name}: dtype {v['dtype']} not handled")
        t = torch.frombuffer(bytearray(m[base + a:base + b]), dtype=dt) if b > a else torch.empty(0, dtype=dt)
        return t.reshape(v["shape"])


def unpack_words(packed, bits, n):
    """int32 [W, C] packed along dim 0 -> int64 [n, C] codes, as AutoGPTQ's
    torch dequantization unpacks them."""
    p = packed.to(torch.int64) & 0xFFFFFFFF
    mask = (1 << bits) - 1
    if bits in (2, 4, 8):
        shifts = torch.arange(0, 32, bits, dtype=torch.int64, device=p.device).view(1, -1, 1)
        v = (p.unsqueeze(1) >> shifts) & mask  # [W, 32/b, C]
        return v.reshape(-1, p.shape[1])[:n]
    if bits != 3:
        raise ValueError(f"bits = {bits}")
    q = p.view(-1, 3, p.shape[1])
    w0, w1, w2 = q[:, 0], q[:, 1], q[:, 2]
    parts = [(w0 >> (3 * j)) & 7 for j in range(10)]
    parts.append(((w0 >> 30) & 3) | ((w1 << 2) & 4))
    parts += [(w1 >> (3 * j + 1)) & 7 for j in range(10)]
    parts.append(((w1 >> 31) & 1) | ((w2 << 1) & 6))
    parts += [(w2 >> (3 * j + 2)) & 7 for j in range(10)]
    return torch.stack(parts, dim=1).reshape(-1, p.shape[1])[:n]  # [W/3 * 32, C]


def dequantize(sd, base, bits, offset, device, problems):
    """W (out x in, f32) of linear base, or None after recording what is wrong."""
    qw = sd.get(base + ".qweight").to(device)
    qz = sd.get(base + ".qzeros").to(device)
    sc = sd.get(base + ".scales").to(device)
    gi = sd.get(base + ".g_idx").to(device) if base + ".g_idx" in sd else None
    N = qw.shape[1]
    K = qw.shape[0] * 32 // bits
    G = sc.shape[0]
    bad = []
    if qw.dtype != torch.int32 or qz.dtype != torch.int32:
        bad.append(f"qweight/qzeros dtypes {qw.dtype}/{qz.dtype}, expected int32")
    if sc.dtype != torch.float16 or list(sc.shape) != [G, N]:
        bad.append(f"scales {sc.dtype} {list(sc.shape)}, expected float16 [{G}, {N}]")
    if list(qz.shape) != [G, N * bits // 32]:
        bad.append(f"qzeros {list(qz.shape)}, expected [{G}, {N * bits // 32}]")
    if gi is None:
        bad.append("g_idx missing")
    elif gi.dtype != torch.int32 or list(gi.shape) != [K]:
        bad.append(f"g_idx {gi.dtype} {list(gi.shape)}, expected int32 [{K}]")
    elif int(gi.min()) < 0 or int(gi.max()) >= G:
        bad.append(f"g_idx values in [{int(gi.min())}, {int(gi.max())}], expected [0, {G})")
    if bad:
        problems.append({"linear": base, "problems": bad})
        return None
    if bits == 3 and (qw.shape[0] % 3 or qz.shape[1] % 3):
        problems.append({"linear": base, "problems": ["3-bit qweight/qzeros need a multiple of 3 words"]})
        return None
    q = unpack_words(qw, bits, K)  # [K, N]
    z = unpack_words(qz.t().contiguous(), bits, N).t()  # [G, N]
    if offset and bool((z == (1 << bits) - 1).any()):
        problems.append({"linear": base, "problems": [f"a v1 zero field holds {(1 << bits) - 1} (zero {1 << bits})"]})
    z = z + offset
    g = gi.to(torch.int64)
    W = sc.float()[g] * (q - z[g]).float()  # [K, N]
    return W.t().contiguous()


def compare_bits(a, b):
    """(number of elements whose bits differ, max |a - b|) of two f32 tensors."""
    if list(a.shape) != list(b.shape):
        return None, None
    a = a.float().contiguous()
    b = b.float().contiguous().to(a.device)
    diff = int((a.view(torch.int32) != b.view(torch.int32)).sum())
    return diff, float((a - b).abs().max()) if a.numel() else 0.0


def logits(model, ids, device):
    with torch.no_grad():
        out = model(torch.tensor([ids], device=device))
    return out.logits[0].float().cpu()


def logit_stats(a, b):
    d = (a - b).abs()
    rel = float(torch.linalg.norm(a - b) / max(float(torch.linalg.norm(b)), 1e-30))
    top1 = float((a.argmax(-1) == b.argmax(-1)).float().mean())
    return {"max_abs_diff": float(d.max()), "rel_l2": rel, "top1_agree": top1}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("ref_dir")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--no-logits", action="store_true")
    ap.add_argument("--ref-digests", help="REF_DIR/FILE: JSON {tensor: sha256 of its f32 little-endian bytes} "
                    "standing in for REF_DIR's weights (a reference small enough to carry)")
    ap.add_argument("--llmpress-nll", help="JSON {ids: [...], nll: mean nats per token of ids[1:] by llmpress "
                    "on DIR}: the emulated model (DIR's config, dequantized weights) must agree")
    a = ap.parse_args()
    summary = {"dir": a.dir, "ref_dir": a.ref_dir, "device": a.device, "torch": torch.__version__}

    with open(os.path.join(a.dir, "config.json")) as f:
        cfg = json.load(f)
    qc = cfg.get("quantization_config") or {}
    if str(qc.get("quant_method", "")).lower() != "gptq":
        print(json.dumps({**summary, "ok": False, "error": "config.json: quant_method is not gptq"}))
        return 1
    bits = int(qc["bits"])
    fmt = qc.get("checkpoint_format") or qc.get("format") or "gptq"
    offset = {"gptq": 1, "gptq_v2": 0}.get(fmt)
    if bits not in (2, 3, 4, 8) or offset is None:
        print(json.dumps({**summary, "ok": False, "error": f"bits {bits} / checkpoint_format {fmt} not handled"}))
        return 1
    summary["quantization_config"] = qc

    sd = SafeDir(a.dir)
    ref = Digests(os.path.join(a.ref_dir, a.ref_digests)) if a.ref_digests else SafeDir(a.ref_dir)
    bases = sorted(n[: -len(".qweight")] for n in sd.names() if n.endswith(".qweight"))
    problems, mismatched, missing = [], [], []
    exact = 0
    deq = {}
    for base in bases:
        W = dequantize(sd, base, bits, offset, a.device, problems)
        if W is None:
            continue
        deq[base] = W.cpu()
        if base + ".weight" not in ref:
            missing.append(base + ".weight")
            continue
        if isinstance(ref, Digests):
            if ref.matches(base + ".weight", W):
                exact += 1
            else:
                mismatched.append({"linear": base, "shape": list(W.shape), "why": "sha256 of the f32 bytes differs"})
            continue
        r = ref.get(base + ".weight")
        nd, mx = compare_bits(W, r)
        if nd == 0:
            exact += 1
        else:
            mismatched.append({"linear": base, "shape": list(W.shape), "ref_shape": list(r.shape),
                               "bits_differ": nd, "max_abs_diff": mx})
    summary["linears"] = {"count": len(bases), "bit_exact": exact, "mismatched": mismatched[:20],
                          "n_mismatched": len(mismatched), "missing_in_ref": missing[:20], "n_missing": len(missing),
                          "malformed": problems[:20], "n_malformed": len(problems)}

    # the other tensors: DIR's 16-bit value == REF's rounded to that dtype
    other = {"count": 0, "exact": 0, "mismatched": []}
    for name in ([] if isinstance(ref, Digests) else sd.names()):
        if name.endswith(QSUFFIXES):
            continue
        other["count"] += 1
        if name not in ref:
            other["mismatched"].append({"tensor": name, "why": "missing in ref"})
            continue
        t, r = sd.get(name), ref.get(name)
        if list(t.shape) != list(r.shape):
            other["mismatched"].append({"tensor": name, "why": f"shape {list(t.shape)} vs {list(r.shape)}"})
        elif torch.equal(r.to(t.dtype), t):
            other["exact"] += 1
        else:
            other["mismatched"].append({"tensor": name, "dtype": str(t.dtype),
                                        "max_abs_diff": float((t.float() - r.float()).abs().max())})
    other["n_mismatched"] = len(other["mismatched"])
    other["mismatched"] = other["mismatched"][:20]
    summary["other_tensors"] = other

    if not a.no_logits:
        summary["logits"] = run_logits(a, cfg, sd, deq)

    summary["ok"] = (exact == len(bases) and not problems and not missing and other["n_mismatched"] == 0)
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


class Digests:
    """REF as sha256 digests of each tensor's f32 little-endian bytes."""

    def __init__(self, path):
        with open(path) as f:
            self.d = json.load(f)

    def __contains__(self, name):
        return name in self.d

    def matches(self, name, t):
        import hashlib
        b = t.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4").tobytes()
        return hashlib.sha256(b).hexdigest() == self.d[name]


def emulated_vs_llmpress(a, cfg, sd, deq):
    """DIR's architecture (config without quantization_config) with the dequantized
    linears and DIR's other tensors, run by transformers in f32 on llmpress's token
    ids: its mean NLL against llmpress's on the same file."""
    from transformers import AutoConfig, AutoModelForCausalLM
    with open(a.llmpress_nll) as f:
        ref = json.load(f)
    c = {k: v for k, v in cfg.items() if k != "quantization_config"}
    c["torch_dtype"] = "float32"
    conf = AutoConfig.for_model(**{k: v for k, v in c.items() if k not in ("architectures", "transformers_version")})
    conf.architectures = cfg.get("architectures")
    m = AutoModelForCausalLM.from_config(conf, torch_dtype=torch.float32)
    state = m.state_dict()
    for k in list(state):
        base = k[: -len(".weight")] if k.endswith(".weight") else None
        if base in deq:
            state[k] = deq[base].to(torch.float32)
        elif k in sd:
            state[k] = sd.get(k).to(torch.float32)
    if "lm_head.weight" in state and "lm_head.weight" not in sd and "lm_head" not in deq:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    m.load_state_dict(state)
    m = m.to(a.device).eval()
    ids = torch.tensor([ref["ids"]], device=a.device)
    with torch.no_grad():
        lg = m(ids).logits[0].double().log_softmax(-1)
    nll = float(-lg[torch.arange(len(ref["ids"]) - 1), ids[0, 1:]].mean())
    return {"tokens": len(ref["ids"]), "transformers_nll": nll, "llmpress_nll": ref["nll"],
            "diff": nll - ref["nll"], "agree_1e-4": abs(nll - ref["nll"]) < 1e-4}


def run_logits(a, cfg, sd, deq):
    """Logits of the reference model, the emulated GPTQ model and, when
    transformers can load it, the native GPTQ model."""
    res = {}
    try:
        import transformers
        res["transformers"] = transformers.__version__
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        return {"skipped": f"transformers not importable: {type(e).__name__}: {e}"[:400]}
    from transformers import AutoModelForCausalLM
    vocab = int(cfg.get("vocab_size", 32000))
    ids = [(i * 37 + 11) % vocab for i in range(a.tokens)]
    res["tokens"] = a.tokens
    if a.llmpress_nll:
        try:
            res["emulated_vs_llmpress"] = emulated_vs_llmpress(a, cfg, sd, deq)
        except Exception as e:  # noqa: BLE001
            res["emulated_vs_llmpress"] = {"error": f"{type(e).__name__}: {e}"[:600]}
    ref_logits = None
    if os.path.isfile(os.path.join(a.ref_dir, "config.json")):
        try:
            m = AutoModelForCausalLM.from_pretrained(a.ref_dir, torch_dtype=torch.float32).to(a.device).eval()
            ref_logits = logits(m, ids, a.device)
            # emulated: the reference architecture with DIR's dequantized linears and 16-bit tensors
            state = m.state_dict()
            loaded = 0
            for k in list(state):
                base = k[: -len(".weight")] if k.endswith(".weight") else None
                if base in deq:
                    state[k] = deq[base].to(state[k].dtype)
                    loaded += 1
                elif k in sd:
                    state[k] = sd.get(k).to(state[k].dtype)
                    loaded += 1
            tied = cfg.get("tie_word_embeddings", False) and "lm_head.weight" not in sd
            if tied and "lm_head.weight" in state and "model.embed_tokens.weight" in state:
                state["lm_head.weight"] = state["model.embed_tokens.weight"]  # both names, one tensor
            m.load_state_dict(state)
            res["emulated_vs_ref"] = logit_stats(logits(m, ids, a.device), ref_logits)
            res["emulated_tensors_replaced"] = loaded
            del m
        except Exception as e:  # noqa: BLE001
            res["ref_error"] = f"{type(e).__name__}: {e}"[:600]
    else:
        res["ref_error"] = "REF_DIR has no config.json: no reference model to run"
    try:
        dt = torch.bfloat16 if cfg.get("torch_dtype", cfg.get("dtype")) == "bfloat16" else torch.float16
        m = AutoModelForCausalLM.from_pretrained(a.dir, torch_dtype=dt, device_map=a.device).eval()
        res["native_loaded"] = True
        res["native_class"] = type(m).__name__
        qlin = [type(x).__module__ + "." + type(x).__name__ for x in m.modules() if "QuantLinear" in type(x).__name__]
        res["native_quant_linear"] = sorted(set(qlin))[:5]
        nat = logits(m, ids, a.device)
        if ref_logits is not None:
            res["native_vs_ref"] = logit_stats(nat, ref_logits)
    except Exception as e:  # noqa: BLE001
        res["native_loaded"] = False
        res["native_error"] = f"{type(e).__name__}: {e}"[:600]
    return res


if __name__ == "__main__":
    sys.exit(main())
