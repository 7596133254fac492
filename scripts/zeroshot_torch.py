#!/usr/bin/env python3
"""zeroshot_torch.py - the PyTorch reference for llmpress's zero-shot task scores.

What: scores the zero-shot task files (../shared/assets/zeroshot layout) with
Hugging Face transformers in float32 and writes per task the metrics and, for
the first K examples of each task, every request's summed continuation
log-probability, its number of continuation tokens and whether every one of
them is the greedy argmax. `llmpress eval --tasks` must reproduce these
numbers (metrics exactly up to near-ties, log-probabilities to ~1e-4).
Why independent: it implements the conventions of lm-evaluation-harness 0.4
from their description (include/llmpress/tasks.h repeats it) without calling
llmpress, so a shared misreading cannot hide behind a shared implementation.

Conventions:
  requests  context = query + delimiter ("\\nAnswer: " for arc_easy,
            arc_challenge, piqa, boolq; " " for the others), one request per
            choice; hellaswag: context line + " " and each of the 4 endings;
            winogrande: each context option + " " with the shared continuation;
            lambada_openai: context + " " and the last word.
  encoding  the context's trailing whitespace (str.rstrip) moves to the front
            of the continuation; ctx = tok(context), cont = tok(context +
            continuation)[len(ctx):], add_special_tokens=False (no BOS); when
            ctx is empty it is [EOS] and cont = tok(context + continuation).
  model     input = (ctx + cont)[-(W+1):][:-1], W = max_position_embeddings;
            the last len(cont) rows of logits score cont; log-softmax in float64.
  metrics   acc = argmax of summed log-probability (first index on ties) is
            gold; acc_norm = the same divided by len(choice) in code points
            (multiple choice); winogrande: acc; lambada: acc = all tokens
            greedy, ppl = exp(-mean logprob). stderr = sqrt(p(1-p)/(n-1)).
  --limit N scores the first N examples of each task in file order.

Usage (on the GPU machine):
  python3 scripts/zeroshot_torch.py MODEL_DIR TASKS_DIR --limit N --out FILE.json [--examples K]
      [--tasks all|a,b,...] [--batch 32] [--device cuda]
"""
import argparse
import json
import math
import os
import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False

# name, file, delimiter, format, type
TASKS = [
    ("arc_easy", "arc_easy.jsonl", "\nAnswer: ", "choice", "choice"),
    ("arc_challenge", "arc_challenge.jsonl", "\nAnswer: ", "choice", "choice"),
    ("piqa", "piqa.jsonl", "\nAnswer: ", "choice", "choice"),
    ("boolq", "boolq.jsonl", "\nAnswer: ", "choice", "choice"),
    ("hellaswag", "hellaswag/hellaswag_val_full.txt", " ", "hellaswag", "choice"),
    ("winogrande", "winogrande.jsonl", " ", "winogrande", "partial"),
    ("openbook_qa", "openbook_qa.jsonl", " ", "choice", "choice"),
    ("copa", "copa.jsonl", " ", "choice", "choice"),
    ("siqa", "siqa.jsonl", " ", "choice", "choice"),
    ("lambada_openai", "lambada_openai.jsonl", " ", "lambada", "lambada"),
]


def read_lines(path):
    """Lines split on "\\n" only (str.splitlines would also split on \\r, \\x1c,
    \\x85, U+2028...), a UTF-8 byte order mark dropped, no final empty line."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8-sig")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def load_task(tasks_dir, name, limit):
    """[(gold, [(context, continuation), ...]), ...] for the first `limit` examples."""
    _, file, delim, fmt, _ = next(t for t in TASKS if t[0] == name)
    lines = read_lines(os.path.join(tasks_dir, file))
    examples = []
    if fmt == "hellaswag":
        for g in range(0, len(lines) - len(lines) % 6, 6):
            if limit and len(examples) >= limit:
                break
            item = [l[:-1] if l.endswith("\r") else l for l in lines[g:g + 6]]
            gold = int(item[1])
            assert 0 <= gold <= 3, f"{file}:{g + 2}: gold {gold}"
            examples.append((gold, [(item[0] + delim, e) for e in item[2:6]]))
        return examples
    for i, line in enumerate(lines):
        if limit and len(examples) >= limit:
            break
        if line.strip(" \t\r") == "":
            continue
        d = json.loads(line)
        if fmt == "choice":
            examples.append((d["gold"], [(d["query"] + delim, c) for c in d["choices"]]))
        elif fmt == "winogrande":
            examples.append((d["gold"], [(o + delim, d["continuation"]) for o in d["context_options"]]))
        else:
            examples.append((-1, [(d["context"] + delim, d["continuation"])]))
    return examples


def encode_pair(tok, context, continuation, eot):
    n = len(context) - len(context.rstrip())
    if n > 0:
        continuation = context[-n:] + continuation
        context = context[:-n]
    whole = tok.encode(context + continuation, add_special_tokens=False)
    ctx = tok.encode(context, add_special_tokens=False)
    if len(ctx) == 0:
        return [eot], whole
    return ctx, whole[len(ctx):]


@torch.no_grad()
def score_requests(model, reqs, window, device, batch):
    """reqs: [(ctx, cont)] -> [(logprob, ntok, greedy)], batched by length with
    right padding (a causal model's real rows do not see the padding)."""
    items = []
    for ctx, cont in reqs:
        full = ctx + cont
        inp = full[-(window + 1):][:-1]
        items.append((inp, cont))
    out = [None] * len(items)
    order = sorted(range(len(items)), key=lambda i: -len(items[i][0]))
    for b in range(0, len(order), batch):
        idx = order[b:b + batch]
        L = max(len(items[i][0]) for i in idx)
        ids = torch.zeros((len(idx), L), dtype=torch.long)
        mask = torch.zeros((len(idx), L), dtype=torch.long)
        for r, i in enumerate(idx):
            inp = items[i][0]
            ids[r, :len(inp)] = torch.tensor(inp)
            mask[r, :len(inp)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        for r, i in enumerate(idx):
            inp, cont = items[i]
            C = len(cont)
            if C == 0:
                out[i] = (0.0, 0, True)
                continue
            rows = logits[r, len(inp) - C:len(inp)].double()
            lsm = torch.log_softmax(rows, dim=-1)
            tgt = torch.tensor(cont, device=lsm.device)
            lp = lsm.gather(1, tgt[:, None]).sum().item()
            greedy = bool((rows.argmax(dim=-1) == tgt).all().item())
            out[i] = (lp, C, greedy)
    return out


def stderr01(p, n):
    return math.sqrt(p * (1 - p) / (n - 1)) if n > 1 else None


def argmax_first(v):
    best = 0
    for i in range(1, len(v)):
        if v[i] > v[best]:
            best = i
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("tasks_dir")
    ap.add_argument("--limit", type=int, default=0, help="first N examples of each task (0: all)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--examples", type=int, default=0, help="per-request scores of the first K examples")
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()

    names = [t[0] for t in TASKS] if a.tasks == "all" else a.tasks.split(",")
    for n in names:
        if n not in [t[0] for t in TASKS]:
            sys.exit(f"unknown task {n}; known: {', '.join(t[0] for t in TASKS)}")
    tok = AutoTokenizer.from_pretrained(a.model_dir)
    model = AutoModelForCausalLM.from_pretrained(a.model_dir, dtype=torch.float32, attn_implementation="eager")
    model.to(a.device).eval()
    window = model.config.max_position_embeddings
    eot = tok.eos_token_id if tok.eos_token_id is not None else model.config.eos_token_id

    res = {"model": a.model_dir, "tasks_dir": a.tasks_dir, "limit": a.limit, "window": window,
           "eot": eot, "torch": torch.__version__, "device": a.device, "tasks": {}, "examples": {}}
    for name in names:
        t0 = time.time()
        typ = next(t for t in TASKS if t[0] == name)[4]
        examples = load_task(a.tasks_dir, name, a.limit)
        reqs, spans = [], []
        for gold, rs in examples:
            spans.append((len(reqs), len(rs)))
            reqs.extend(encode_pair(tok, c, k, eot) for c, k in rs)
        scores = score_requests(model, reqs, window, a.device, a.batch)
        n = len(examples)
        hit = hit_norm = 0
        lp_sum = 0.0
        dump = []
        for e, ((gold, rs), (first, count)) in enumerate(zip(examples, spans)):
            s = scores[first:first + count]
            if typ == "lambada":
                hit += s[0][2]
                lp_sum += s[0][0]
            else:
                ll = [x[0] for x in s]
                hit += argmax_first(ll) == gold
                hit_norm += argmax_first([ll[i] / len(rs[i][1]) for i in range(count)]) == gold
            if e < a.examples:
                dump.append({"index": e, "gold": gold,
                             "choices": [{"logprob": x[0], "ntok": x[1], "greedy": x[2]} for x in s]})
        acc = hit / n
        m = {"n": n, "acc": acc, "acc_stderr": stderr01(acc, n)}
        if typ == "choice":
            m["acc_norm"] = hit_norm / n
            m["acc_norm_stderr"] = stderr01(hit_norm / n, n)
        elif typ == "lambada":
            m["ppl"] = math.exp(-lp_sum / n)
        m["seconds"] = round(time.time() - t0, 1)
        res["tasks"][name] = m
        res["examples"][name] = dump
        print(f"{name:16s} " + " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                          for k, v in m.items()), flush=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
