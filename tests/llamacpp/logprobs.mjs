#!/usr/bin/env node
// logprobs.mjs - per-token log-probabilities of a text under a GGUF model, computed by
// llama.cpp itself (through node-llama-cpp's prebuilt CPU binary).
//
// What: loads MODEL.gguf, tokenizes TEXTFILE with the model's own tokenizer (BOS
// prepended when the GGUF says so: tokenizer.ggml.add_bos_token) or takes the ids from
// --tokens, evaluates the whole sequence in ONE context and prints one JSON object:
//   {"llama_cpp": "<bundled release>", "tokens": [...], "logprobs": [...],
//    "n_vocab": V, "seconds": S, ...}
// where logprobs[i-1] = log p(tokens[i] | tokens[<i]) for i = 1 .. T-1 (T-1 values).
//
// Why: the independent check of `llmpress export --to gguf`: the file must load in
// llama.cpp and give the same next-token distribution as llmpress's own forward pass.
//
// Design: LlamaContextSequence.controlledEvaluate() with, for every position but the
// last, generateNext: {probabilities: true} returns the next-token distribution over
// the whole vocabulary, softmax of the raw logits of llama_get_logits_ith (the default
// greedy sampler changes nothing; no top-k/top-p). node-llama-cpp 3.21 has no raw-logit
// output (3.22 added generateNext.logits, see README.md for why we pin 3.21), so the
// addon's float softmax is renormalized here in double (logProbAt):
//   log p(t) = log p~[t] - log(sum_v p~[v]).
// Each position's V values are reduced to one number in the onTokenResult callback and
// dropped at once, so T x V values never sit in memory together. The sequence must
// fit the context (no context shift, which would silently drop the beginning).
// Nothing is downloaded or compiled: getLlama({gpu: false, build: "never",
// skipDownload: true}) uses the prebuilt @node-llama-cpp/linux-x64 binary or fails.
//
//   usage: node tests/llamacpp/logprobs.mjs MODEL.gguf TEXTFILE [flags]
//          node tests/llamacpp/logprobs.mjs MODEL.gguf --tokens ids.json [flags]
//   flags: --threads N   CPU threads (default: all cores)
//          --ctx N       context size in tokens (default 512); T must be <= N
//          --tokens F    token ids as a JSON array, or an object with a "tokens" array
//                        (e.g. this script's own output); used as given, no BOS added
//          --no-bos      tokenize TEXTFILE without BOS even if the model asks for one
//          --kv-f32      F32 KV cache instead of llama.cpp's default F16 (tighter parity)
//          --verbose     llama.cpp's log (warnings and info) on stderr
// Exit status: 0 on success, 1 on bad input or a llama.cpp failure, 2 on bad usage.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const USAGE = `usage: node tests/llamacpp/logprobs.mjs MODEL.gguf (TEXTFILE | --tokens ids.json)
                [--threads N] [--ctx N] [--no-bos] [--kv-f32] [--verbose]
example: node tests/llamacpp/logprobs.mjs out.gguf ../shared/assets/text/corpus/heldout.txt --ctx 512`;

// Bad input (as opposed to a bug or a llama.cpp failure): message and optional hint.
class InputError extends Error {
    constructor(message, hint) { super(message); this.hint = hint; }
}

function die(msg, hint, code = 1) {
    process.stderr.write(`logprobs: ${msg}\n`);
    if (hint) process.stderr.write(`---> HINT: ${hint}\n`);
    process.exit(code);
}

function parseArgs(argv) {
    const a = { threads: 0, ctx: 512, tokens: null, bos: true, kvF32: false, verbose: false, pos: [] };
    const intArg = (name, v, min) => {
        if (v === undefined || !/^\d+$/.test(v) || Number(v) < min)
            die(`${name} needs an integer >= ${min}, got '${v ?? ""}'`, null, 2);
        return Number(v);
    };
    for (let i = 0; i < argv.length; i++) {
        const s = argv[i];
        if (s === "--threads") a.threads = intArg(s, argv[++i], 1);
        else if (s === "--ctx") a.ctx = intArg(s, argv[++i], 2);
        else if (s === "--tokens") { a.tokens = argv[++i]; if (!a.tokens) die("--tokens needs a file", null, 2); }
        else if (s === "--no-bos") a.bos = false;
        else if (s === "--kv-f32") a.kvF32 = true;
        else if (s === "--verbose") a.verbose = true;
        else if (s === "-h" || s === "--help") { process.stdout.write(USAGE + "\n"); process.exit(0); }
        else if (s.startsWith("-") && s !== "-") die(`unknown flag '${s}'`, "see --help", 2);
        else a.pos.push(s);
    }
    const want = a.tokens ? 1 : 2;
    if (a.pos.length !== want)
        die(a.tokens ? "give MODEL.gguf and --tokens, not also a TEXTFILE"
                     : "need MODEL.gguf and TEXTFILE (or --tokens ids.json)", USAGE, 2);
    if (a.threads === 0) a.threads = os.availableParallelism?.() ?? os.cpus().length;
    return a;
}

// Magic and version, before llama.cpp sees the file: its own error for a non-GGUF
// file is a generic "failed to load model".
function checkGguf(file) {
    let fd;
    try { fd = fs.openSync(file, "r"); }
    catch (e) { throw new InputError(`cannot open model '${file}': ${e.code ?? e.message}`); }
    const hdr = Buffer.alloc(8);
    const n = fs.readSync(fd, hdr, 0, 8, 0);
    fs.closeSync(fd);
    const magic = hdr.toString("latin1", 0, Math.min(n, 4));
    if (n < 8 || magic !== "GGUF")
        throw new InputError(`'${file}' is not a GGUF file: magic '${JSON.stringify(magic).slice(1, -1)}', expected 'GGUF'` +
                             (n < 8 ? ` (file is only ${n} bytes)` : ""));
    const version = hdr.readUInt32LE(4);
    if (version < 2 || version > 3)
        throw new InputError(`'${file}': GGUF version ${version}, expected 2 or 3`);
}

function readTokenFile(file) {
    let v;
    try { v = JSON.parse(fs.readFileSync(file, "utf8")); }
    catch (e) { throw new InputError(`cannot read token ids from '${file}': ${e.code ?? e.message}`); }
    if (v && !Array.isArray(v) && Array.isArray(v.tokens)) v = v.tokens;
    if (!Array.isArray(v))
        throw new InputError(`'${file}': expected a JSON array of token ids or an object with a "tokens" array`);
    v.forEach((t, i) => {
        if (!Number.isInteger(t) || t < 0)
            throw new InputError(`'${file}': token ${i} is ${JSON.stringify(t)}, expected a non-negative integer`);
    });
    return v;
}

// log p(target) from the Map token -> probability over the whole vocabulary that the
// addon returns. The addon computes p[v] = expf(l[v] - m) / S in float, with S summed
// in float over the logits sorted high to low, which under-counts the tail (on
// llama-25m, log p too high by up to 4e-4). Dividing by the double sum of the returned
// p[v] cancels S exactly: p[t] / sum_v p[v] = e[t] / sum_v e[v], with e[v] = expf(..)
// correct to float rounding, so what is left is ~1e-7 relative per term.
function logProbAt(probs, target) {
    let s = 0;
    for (const p of probs.values()) s += p;
    const pt = probs.get(target);
    if (pt === undefined || !(pt > 0) || !(s > 0)) return NaN; // caller reports it
    return Math.log(pt) - Math.log(s);
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const modelPath = args.pos[0];
    checkGguf(modelPath);
    let text = null, ids = null;
    if (args.tokens) ids = readTokenFile(args.tokens);
    else {
        try { text = fs.readFileSync(args.pos[1], "utf8"); }
        catch (e) { throw new InputError(`cannot read text file '${args.pos[1]}': ${e.code ?? e.message}`); }
        if (text.length === 0) throw new InputError(`text file '${args.pos[1]}' is empty`);
    }

    // Imported here so that usage errors above do not pay for loading the addon.
    const { getLlama, getModuleVersion, LlamaLogLevel } = await import("node-llama-cpp");
    const nlcVersion = await getModuleVersion();

    const t0 = performance.now();
    const llama = await getLlama({
        gpu: false,               // CPU only: no CUDA/Vulkan/Metal probing
        build: "never",           // never compile llama.cpp; prebuilt binary or an error
        skipDownload: true,       // never fetch llama.cpp sources
        usePrebuiltBinaries: true,
        progressLogs: false,
        maxThreads: args.threads,
        logLevel: args.verbose ? LlamaLogLevel.info : LlamaLogLevel.error,
        logger: (level, message) => process.stderr.write(`llama.cpp ${level}: ${message.replace(/\n$/, "")}\n`),
    });
    const release = llama.llamaCppRelease;
    let model;
    try {
        model = await llama.loadModel({ modelPath: path.resolve(modelPath), gpuLayers: 0 });
    } catch (e) {
        throw new InputError(`llama.cpp could not load '${modelPath}': ${e.message}`,
                             "llama.cpp's reason is in the lines above; --verbose shows its whole log");
    }
    const nVocabMeta = model.fileInfo?.metadata?.tokenizer?.ggml?.tokens?.length;

    let bosAdded = false;
    if (ids === null) {
        ids = Array.from(model.tokenize(text, false));
        if (args.bos && model.tokens.shouldPrependBosToken && model.tokens.bos != null) {
            ids.unshift(model.tokens.bos);
            bosAdded = true;
        }
    }
    if (ids.length < 2)
        throw new InputError(`need at least 2 tokens to score, got ${ids.length}`);
    if (nVocabMeta) {
        const bad = ids.findIndex((t) => t >= nVocabMeta);
        if (bad >= 0) throw new InputError(`token ${bad} is ${ids[bad]}, but the model's vocabulary has ${nVocabMeta} tokens`);
    }
    // node-llama-cpp rounds the context up to a multiple of 256 (reported as n_ctx);
    // the check is against --ctx, which is also the batch: one llama_decode.
    if (ids.length > args.ctx)
        throw new InputError(`${ids.length} tokens do not fit --ctx ${args.ctx}`,
                             "use a larger --ctx or a shorter text"); // no context shift, ever

    const context = await model.createContext({
        contextSize: args.ctx,
        batchSize: args.ctx,      // the whole sequence in one llama_decode, as llama-perplexity
        sequences: 1,
        threads: { ideal: args.threads, min: args.threads },
        flashAttention: false,    // the llama.cpp default at the commits we benchmark with
        ...(args.kvF32 ? { experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" } : {}),
    });
    const seq = context.getSequence();
    const load_seconds = (performance.now() - t0) / 1000;

    // Position i (0 .. T-2) asks for the distribution that predicts token i+1.
    const input = ids.map((t, i) => (i + 1 < ids.length ? [t, { generateNext: { probabilities: true } }] : t));
    const logprobs = new Array(ids.length - 1).fill(NaN);
    let nVocab = 0;
    const t1 = performance.now();
    await seq.controlledEvaluate(input, {
        onTokenResult(i, result) {
            const probs = result.next.probabilities;
            if (!probs) return;
            nVocab = Math.max(nVocab, probs.size);
            logprobs[i] = logProbAt(probs, ids[i + 1]);
            result.next.probabilities = undefined; // free V values now, not at the end
        },
    });
    const seconds = (performance.now() - t1) / 1000;
    const missing = logprobs.findIndex((v) => !Number.isFinite(v));
    if (missing >= 0)
        throw new Error(`no finite log-probability for position ${missing + 1} (token ${ids[missing + 1]}): ` +
                        "its probability underflows float (logit more than ~100 below the top one) " +
                        "or the model produced NaN/inf logits");

    const out = {
        llama_cpp: release.release,
        llama_cpp_repo: release.repo,
        node_llama_cpp: nlcVersion,
        build: llama.buildType,
        model: modelPath,
        bos_added: bosAdded,
        n_ctx: context.contextSize,
        threads: args.threads,
        kv_cache: args.kvF32 ? "f32" : "f16",
        n_vocab: nVocab,
        tokens: ids,
        logprobs,
        load_seconds,
        seconds,
    };
    process.stdout.write(JSON.stringify(out) + "\n");
    await context.dispose();
    await model.dispose();
    await llama.dispose();
}

main().catch((e) => {
    if (e instanceof InputError) die(e.message, e.hint);
    die(`${e.name ?? "error"}: ${e.message}`, e.name === "NoBinaryFoundError"
        ? "install with `npm ci --prefix tests/llamacpp --omit=optional --ignore-scripts` " +
          "(needs @node-llama-cpp/linux-x64: linux, x64, glibc)" : null);
});
