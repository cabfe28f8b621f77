#!/usr/bin/python3
"""Independent NumPy reference for tempo.

Written from the equations in NOTES.md, not from tempo.c: float64
everywhere, RoPE as complex multiplication, the mask applied as -inf before
the softmax, no KV cache (every TEMPO step recomputes the whole sequence).
It produces the golden files in oracle/golden/ that `make test` compares
tempo against.

    reference.py golden --weights DIR --synth DIR --out oracle/golden
    reference.py forward MODEL --tokens 1,2 --positions 0,1 --mask isolated --out T
    reference.py tempo MODEL TOKENIZER --prompt TEXT [--threshold T --mode M ...] --out T
    reference.py encode TOKENIZER.json --vocab N --text TEXT

The byte-level BPE of tokenizer.json (class ByteLevelBPE) is written from
the behaviour of Hugging Face tokenizers: it runs the pre-tokenizer regex
from the file with Python's re (\p{L}, \p{N}, \s spelled out from
unicodedata), where tempo matches the two known regexes by hand.
"""
import argparse
import hashlib
import json
import os
import re
import struct
import sys
import unicodedata

import numpy as np

from gguf_reader import read_gguf  # GGUF files and ggml's block types (oracle/gguf_reader.py)

BOS, EOS = 1, 2


# ---------------------------------------------------------------- model --

class Model:
    """A llama2.c checkpoint (7 int32 header fields, then float32 tensors) or
    a Hugging Face directory (config.json + *.safetensors)."""

    def __init__(self, path):
        if os.path.isdir(path):
            self.load_hf(path)
            return
        with open(path, "rb") as f:
            if f.read(4) == b"GGUF":
                self.load_gguf(path)
                return
        self.rotate_half = False
        raw = open(path, "rb").read()
        dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("7i", raw[:28])
        self.shared = vocab > 0
        vocab = abs(vocab)
        self.path, self.dim, self.hidden, self.n_layers = path, dim, hidden, n_layers
        self.n_heads, self.n_kv, self.vocab, self.seq_len = n_heads, n_kv, vocab, seq_len
        self.hd = dim // n_heads
        self.eps, self.theta = 1e-5, 10000.0
        flat = np.frombuffer(raw, dtype="<f4", offset=28).astype(np.float64)
        off = 0

        def take(*shape):
            nonlocal off
            size = int(np.prod(shape))
            t = flat[off:off + size].reshape(shape)
            off += size
            return t

        L, kvd = n_layers, n_kv * self.hd
        self.emb = take(vocab, dim)
        self.rms_att = take(L, dim)
        self.wq = take(L, dim, dim)
        self.wk = take(L, kvd, dim)
        self.wv = take(L, kvd, dim)
        self.wo = take(L, dim, dim)
        self.rms_ffn = take(L, dim)
        self.w1 = take(L, hidden, dim)
        self.w2 = take(L, dim, hidden)
        self.w3 = take(L, hidden, dim)
        self.rms_final = take(dim)
        take(seq_len, self.hd)  # legacy freq_cis tables
        self.wcls = self.emb if self.shared else take(vocab, dim)
        assert off == flat.size, "checkpoint size does not match its header"
        self.inv_freq = self.theta ** (-np.arange(0, self.hd, 2) / self.hd)

    def load_hf(self, path):
        cfg = json.load(open(os.path.join(path, "config.json")))
        tensors = {}
        for name in sorted(os.listdir(path)):
            if name.endswith(".safetensors"):
                tensors.update(read_safetensors(os.path.join(path, name))[0])
        def t(name):
            return tensors[name].astype(np.float64)
        self.path, self.rotate_half = path, True
        self.dim, self.hidden, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
        self.n_layers, self.n_heads = L, cfg["num_attention_heads"]
        self.n_kv = cfg.get("num_key_value_heads", self.n_heads)
        self.vocab, self.seq_len = cfg["vocab_size"], cfg["max_position_embeddings"]
        self.hd = cfg.get("head_dim", self.dim // self.n_heads)
        self.eps, self.theta = cfg.get("rms_norm_eps", 1e-6), cfg.get("rope_theta", 10000.0)
        self.shared = cfg.get("tie_word_embeddings", False)
        self.emb = t("model.embed_tokens.weight")
        self.wcls = self.emb if self.shared else t("lm_head.weight")
        self.rms_final = t("model.norm.weight")
        def stack(part):
            return np.stack([t(f"model.layers.{l}.{part}.weight") for l in range(L)])
        self.rms_att, self.rms_ffn = stack("input_layernorm"), stack("post_attention_layernorm")
        self.wq, self.wk, self.wv = stack("self_attn.q_proj"), stack("self_attn.k_proj"), stack("self_attn.v_proj")
        self.wo, self.w1, self.w3, self.w2 = stack("self_attn.o_proj"), stack("mlp.gate_proj"), stack("mlp.up_proj"), stack("mlp.down_proj")
        rs = cfg.get("rope_scaling") or {}
        kind = rs.get("rope_type", rs.get("type", "default"))
        if kind == "llama3":
            self.inv_freq = llama3_inv_freq(self.theta, self.hd, rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"],
                                            rs["original_max_position_embeddings"])
        else:
            self.inv_freq = self.theta ** (-np.arange(0, self.hd, 2) / self.hd) / (rs["factor"] if kind == "linear" else 1.0)


    def load_gguf(self, path):
        """A GGUF llama model: every tensor dequantized by gguf_reader.dequantize();
        q/k rows are in llama2.c's interleaved pair order."""
        kv, tensors = read_gguf(path)
        def t(name):
            return tensors[name].astype(np.float64)
        self.path, self.rotate_half = path, False
        self.dim, self.hidden = kv["llama.embedding_length"], kv["llama.feed_forward_length"]
        self.n_layers = L = kv["llama.block_count"]
        self.n_heads = kv["llama.attention.head_count"]
        self.n_kv = kv.get("llama.attention.head_count_kv", self.n_heads)
        self.seq_len, self.hd = kv["llama.context_length"], self.dim // self.n_heads
        self.eps, self.theta = float(kv["llama.attention.layer_norm_rms_epsilon"]), float(kv.get("llama.rope.freq_base", 10000.0))
        self.emb = t("token_embd.weight")
        self.vocab = self.emb.shape[0]
        self.shared = "output.weight" not in tensors
        self.wcls = self.emb if self.shared else t("output.weight")
        self.rms_final = t("output_norm.weight")
        def stack(part):
            return np.stack([t(f"blk.{l}.{part}.weight") for l in range(L)])
        self.rms_att, self.rms_ffn = stack("attn_norm"), stack("ffn_norm")
        self.wq, self.wk, self.wv, self.wo = stack("attn_q"), stack("attn_k"), stack("attn_v"), stack("attn_output")
        self.w1, self.w2, self.w3 = stack("ffn_gate"), stack("ffn_down"), stack("ffn_up")
        self.inv_freq = self.theta ** (-np.arange(0, self.hd, 2) / self.hd)
        if kv.get("llama.rope.scaling.type") == "linear":
            self.inv_freq = self.inv_freq / float(kv["llama.rope.scaling.factor"])
        if "rope_freqs.weight" in tensors:  # llama3 scaling: one divisor per frequency
            self.inv_freq = self.inv_freq / t("rope_freqs.weight")


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rotate(x, positions, inv_freq, rotate_half=False):
    """RoPE on x[n, heads, hd]: each pair (2i, 2i+1), or (i, i + hd/2) in the
    Hugging Face layout, is the complex number a + ib, multiplied by
    exp(i * pos * inv_freq[i])."""
    hd = x.shape[-1]
    angles = np.asarray(positions, dtype=np.float64)[:, None] * inv_freq[None, :]
    first, second = (slice(0, hd // 2), slice(hd // 2, hd)) if rotate_half else (slice(0, None, 2), slice(1, None, 2))
    z = (x[..., first] + 1j * x[..., second]) * np.exp(1j * angles)[:, None, :]
    out = np.empty_like(x)
    out[..., first], out[..., second] = z.real, z.imag
    return out


def forward(m, tokens, positions, allowed):
    """All rows at once. allowed: bool [L, n, n] (query, key).
    Returns logits [n, vocab], attention [L, H, n, n], hidden [n, dim]."""
    n = len(tokens)
    x = m.emb[np.asarray(tokens)]
    group = m.n_heads // m.n_kv
    attention = np.zeros((m.n_layers, m.n_heads, n, n))
    for l in range(m.n_layers):
        h = rms_norm(x, m.rms_att[l], m.eps)
        q = rotate((h @ m.wq[l].T).reshape(n, m.n_heads, m.hd), positions, m.inv_freq, m.rotate_half)
        k = rotate((h @ m.wk[l].T).reshape(n, m.n_kv, m.hd), positions, m.inv_freq, m.rotate_half)
        v = (h @ m.wv[l].T).reshape(n, m.n_kv, m.hd)
        out = np.zeros((n, m.n_heads, m.hd))
        for head in range(m.n_heads):
            g = head // group
            scores = q[:, head, :] @ k[:, g, :].T / np.sqrt(m.hd)
            scores = np.where(allowed[l], scores, -np.inf)
            scores = scores - scores.max(axis=1, keepdims=True)
            p = np.exp(scores)
            p = p / p.sum(axis=1, keepdims=True)
            attention[l, head] = p
            out[:, head, :] = p @ v[:, g, :]
        x = x + out.reshape(n, m.n_heads * m.hd) @ m.wo[l].T
        h = rms_norm(x, m.rms_ffn[l], m.eps)
        gate, up = h @ m.w1[l].T, h @ m.w3[l].T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ m.w2[l].T
    hidden = rms_norm(x, m.rms_final, m.eps)
    return hidden @ m.wcls.T, attention, hidden


# ------------------------------------------------------------ tokenizer --

class Tokenizer:
    """llama2.c tokenizer.bin: int32 max length, then (f32 score, i32 len, bytes)."""

    def __init__(self, path, vocab):
        raw = open(path, "rb").read()
        off = 4
        self.pieces, self.scores = [], []
        for _ in range(vocab):
            score, length = struct.unpack_from("<fi", raw, off)
            off += 8
            self.pieces.append(raw[off:off + length])
            off += length
            self.scores.append(score)
        self.ids = {}
        for i, p in enumerate(self.pieces):
            self.ids.setdefault(p, i)

    def encode(self, text):
        """BOS, dummy-space prefix, code points (bytes as id byte+3), then merge
        the adjacent pair with the best score until no pair is a piece."""
        data = text.encode("utf-8")
        if data:
            data = b" " + data if b" " in self.ids else data
        parts = []
        for ch in data.decode("utf-8"):
            b = ch.encode("utf-8")
            if b in self.ids:
                parts.append(self.ids[b])
            else:
                parts.extend(byte + 3 for byte in b)
        while True:
            best = None
            for i in range(len(parts) - 1):
                merged = self.pieces[parts[i]] + self.pieces[parts[i + 1]]
                j = self.ids.get(merged)
                if j is not None and (best is None or self.scores[j] > best[0]):
                    best = (self.scores[j], i, j)
            if best is None:
                break
            _, i, j = best
            parts[i:i + 2] = [j]
        return [BOS] + parts


def bytes_to_unicode():
    """GPT-2's table: printable bytes stand for themselves, the rest become
    chr(256), chr(257), ... in byte order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


# Unicode White_Space (what \s means to Oniguruma, the engine tokenizers uses).
WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200B)) + \
    "\u2028\u2029\u202f\u205f\u3000"


def category_class(major):
    """The body of a [...] class holding every code point of general category major*."""
    out, start = [], None
    for cp in range(0x110001):
        inside = cp < 0x110000 and unicodedata.category(chr(cp))[0] == major
        if inside and start is None:
            start = cp
        elif not inside and start is not None:
            out.append(f"\\U{start:08x}-\\U{cp - 1:08x}")
            start = None
    return "".join(out)


def python_regex(pattern):
    """Rewrites \p{L}, \p{N}, \s and \S (inside and outside [...]) into
    classes Python's re understands with Unicode's meaning."""
    ws = "".join(f"\\U{ord(c):08x}" for c in WHITE_SPACE)
    classes = {"\\p{L}": category_class("L"), "\\p{N}": category_class("N"), "\\s": ws}
    out, i, in_class = [], 0, False
    while i < len(pattern):
        for name, body in classes.items():
            if pattern.startswith(name, i):
                out.append(body if in_class else "[" + body + "]")
                i += len(name)
                break
        else:
            if pattern.startswith("\\S", i):
                assert not in_class, "\\S inside a class"
                out.append("[^" + ws + "]")
                i += 2
                continue
            c = pattern[i]
            if c == "\\":
                out.append(pattern[i:i + 2])
                i += 2
                continue
            if c == "[" and not in_class:
                in_class = True
            elif c == "]" and in_class:
                in_class = False
            out.append(c)
            i += 1
    return re.compile("".join(out))


GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


class ByteLevelBPE:
    """A Hugging Face tokenizer.json with a byte-level BPE model."""

    def __init__(self, path, vocab_size):
        j = json.load(open(path, encoding="utf-8"))
        model = j["model"]
        assert model["type"] == "BPE" and not model.get("byte_fallback")
        self.vocab = model["vocab"]
        self.ignore_merges = bool(model.get("ignore_merges", False))
        self.ranks = {}
        for rank, m in enumerate(model.get("merges", [])):
            a, b = m.split(" ") if isinstance(m, str) else m
            self.ranks[(a, b)] = rank
        self.byte_char = bytes_to_unicode()
        self.char_byte = {c: b for b, c in self.byte_char.items()}
        self.text = {i: bytes(self.char_byte[c] for c in t) for t, i in self.vocab.items()}
        self.added = []  # (content, id, normalized)
        for a in j.get("added_tokens") or []:
            assert not (a.get("lstrip") or a.get("rstrip") or a.get("single_word"))
            self.added.append((a["content"], a["id"], bool(a.get("normalized"))))
            self.text[a["id"]] = a["content"].encode("utf-8")
        assert all(i < vocab_size for i in self.text)
        pre = j["pre_tokenizer"]
        if pre["type"] == "ByteLevel":
            assert pre.get("use_regex", True) and not pre.get("add_prefix_space", True)
            self.split = python_regex(GPT2_REGEX)
        else:
            split, byte_level = pre["pretokenizers"]
            assert split["type"] == "Split" and split["behavior"] == "Isolated" and not split.get("invert")
            assert byte_level["type"] == "ByteLevel" and not byte_level["use_regex"]
            self.split = python_regex(split["pattern"]["Regex"])
        self.prefix, self.suffix = [], []
        self.template(j.get("post_processor"))

    def template(self, post):
        if not post or post["type"] == "ByteLevel":
            return
        if post["type"] == "Sequence":
            for p in post["processors"]:
                self.template(p)
            return
        assert post["type"] == "TemplateProcessing"
        side = self.prefix
        for item in post["single"]:
            if "Sequence" in item:
                side = self.suffix
            else:
                side.extend(post["special_tokens"][item["SpecialToken"]["id"]]["ids"])

    def pieces(self, text):
        """The regex's matches and what lies between them (behaviour Isolated)."""
        out, pos = [], 0
        for m in self.split.finditer(text):
            if m.start() > pos:
                out.append(text[pos:m.start()])
            out.append(m.group())
            pos = m.end()
        if pos < len(text):
            out.append(text[pos:])
        return out

    def bpe(self, piece):
        word = "".join(self.byte_char[b] for b in piece.encode("utf-8"))
        if self.ignore_merges and word in self.vocab:
            return [self.vocab[word]]
        parts = list(word)
        while len(parts) > 1:
            ranked = [(self.ranks[p], i) for i, p in enumerate(zip(parts, parts[1:])) if p in self.ranks]
            if not ranked:
                break
            _, i = min(ranked)
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        return [self.vocab[p] for p in parts]

    def split_added(self, text, normalized):
        """Segments of text: str for plain text, int for an added token (leftmost, then longest)."""
        tokens = sorted((a for a in self.added if a[2] == normalized), key=lambda a: -len(a[0]))
        if not tokens:
            return [text] if text else []
        finder = re.compile("|".join(re.escape(a[0]) for a in tokens))
        ids = {a[0]: a[1] for a in tokens}
        out, pos = [], 0
        for m in finder.finditer(text):
            if m.start() > pos:
                out.append(text[pos:m.start()])
            out.append(ids[m.group()])
            pos = m.end()
        if pos < len(text):
            out.append(text[pos:])
        return out

    def encode(self, text):
        ids = list(self.prefix)
        for seg in self.split_added(text, False):
            for part in [seg] if isinstance(seg, int) else self.split_added(seg, True):
                if isinstance(part, int):
                    ids.append(part)
                else:
                    for piece in self.pieces(part):
                        ids.extend(self.bpe(piece))
        return ids + self.suffix

    def decode(self, ids):
        return b"".join(self.text.get(i, b"") for i in ids).decode("utf-8")


# ---------------------------------------------------------------- masks --

def mask(kind, sets):
    """allowed[q][k]: k <= q; isolated also forbids other members of q's set."""
    sets = np.asarray(sets)
    n = len(sets)
    q, k = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    allowed = k <= q
    if kind == "isolated":
        allowed &= ~((sets[q] == sets[k]) & (q != k))
    return allowed


# ---------------------------------------------------------------- TEMPO --

def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def threshold_at(s, cfg):
    if cfg["schedule"] == "constant":
        return cfg["threshold"]
    u = s / (cfg["max_steps"] - 1) if cfg["max_steps"] > 1 else 0.0
    if cfg["schedule"] == "linear":
        b = u
    else:
        p1, p2 = cfg["bezier"]
        b = 3 * (1 - u) ** 2 * u * p1 + 3 * (1 - u) * u ** 2 * p2 + u ** 3
    return cfg["threshold"] + (cfg["final_threshold"] - cfg["threshold"]) * b


def tempo(m, prompt, cfg):
    """The TEMPO loop, recomputing everything each step. Returns the rows
    (tokens, positions, sets, step added, pruned step), the steps and the
    final full forward (logits, attention, allowed)."""
    tokens, positions, sets = list(prompt), list(range(len(prompt))), list(range(len(prompt)))
    added = [-1] * len(prompt)     # step at which each row was added
    pruned = [-1] * len(prompt)    # step at which each row was pruned
    steps = []
    L = m.n_layers
    iso_layers = set(range(cfg["isolate"][0], cfg["isolate"][1] + 1)) if cfg["mode"] == "isolated" else set()

    def masks():
        n = len(tokens)
        allowed = np.zeros((L, n, n), dtype=bool)
        for l in range(L):
            allowed[l] = mask("isolated" if l in iso_layers else "visible", sets)
        for q in range(n):             # a pruned key is gone for rows added after the pruning
            for k in range(n):
                if pruned[k] >= 0 and added[q] > pruned[k]:
                    allowed[:, q, k] = False
        return allowed

    logits, attention, _ = forward(m, tokens, positions, masks())
    stop = "max-tokens"
    for s in range(cfg["max_steps"]):
        pos = len(prompt) + s
        if pos >= m.seq_len:
            stop = "context-full"
            break
        thr = threshold_at(s, cfg)
        if cfg["next_from"] == "mean" and steps:
            live = [r for r in steps[-1]["rows"] if pruned[r] < 0]
            probs = np.mean([softmax(logits[r]) for r in live], axis=0)
        else:
            probs = softmax(logits[len(tokens) - 1])
        chosen = sorted([v for v in range(m.vocab) if probs[v] >= thr], key=lambda v: (-probs[v], v))
        chosen = chosen[:cfg["max_width"]]
        if not chosen:
            if cfg["stop_on_empty"]:
                stop = "empty-set"
                break
            chosen = [int(np.argmax(probs))]
        if chosen[0] == EOS:
            stop = "eos"
            break
        first = len(tokens)
        for v in chosen:
            if v == EOS:               # EOS as a lower member: a branch that ends, never fed
                continue
            tokens.append(v)
            positions.append(pos)
            sets.append(pos)
            added.append(s)
            pruned.append(-1)
        rows = list(range(first, len(tokens)))
        steps.append({"position": pos, "threshold": thr, "tokens": chosen, "rows": rows,
                      "probs": [float(probs[v]) for v in chosen]})
        allowed = masks()
        logits, attention, _ = forward(m, tokens, positions, allowed)
        if cfg["prune"]:
            layers = range(L - cfg["prune_layers"], L)
            for earlier in steps[:-1]:
                if s - (earlier["position"] - len(prompt)) > cfg["prune_window"]:
                    continue
                live = [r for r in earlier["rows"] if pruned[r] < 0]
                if len(live) < 2:
                    continue
                received = {r: sum(attention[l, :, first:, r].sum() for l in layers) for r in live}
                total = sum(received.values())
                if total <= 0:
                    continue
                strongest = max(live, key=lambda r: (received[r], -r))
                for r in live:
                    if r != strongest and received[r] / total < cfg["prune_threshold"] / len(live):
                        pruned[r] = s
    allowed = masks()
    logits, attention, _ = forward(m, tokens, positions, allowed)
    return dict(tokens=tokens, positions=positions, sets=sets, pruned=pruned, steps=steps, stop=stop,
                logits=logits, attention=attention, allowed=allowed)


# ----------------------------------------------------------- safetensors --

def write_safetensors(path, tensors, metadata):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dtype = {np.dtype("float32"): "F32", np.dtype("int32"): "I32", np.dtype("uint8"): "U8"}[arr.dtype]
        data = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    os.replace(tmp, path)


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    types = {"F32": "<f4", "I32": "<i4", "U8": "u1", "F16": "<f2", "BF16": "<u2"}
    out = {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        arr = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=types[h["dtype"]]).reshape(h["shape"])
        if h["dtype"] == "BF16":  # the upper 16 bits of a float32
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr
    if "allowed_bits" in out:
        out["allowed"] = unpack_allowed(out.pop("allowed_bits"))
    if meta.get("mask") == "rule" and "allowed" not in out:
        out["allowed"] = rule_allowed(out, meta)
    return out, meta


def rule_allowed(t, meta):
    """The mask a trace stores as a rule (metadata mask "rule"): in each layer
    k <= q, an isolated layer hides the other members of q's set, and a row
    pruned at step s is hidden from the rows added at later steps (the
    prompt's rows are step -1, each new set id after them the next step).
    [n, n] for one kind, [L, n, n] for one kind per layer."""
    kinds = meta["mask_kinds"].split(",")
    if any(kind not in ("causal", "isolated", "visible") for kind in kinds):
        raise ValueError(f"unknown mask kind in {meta['mask_kinds']!r}")
    sets = np.asarray(t["sets"])
    n = len(sets)
    pruned = np.asarray(t["pruned"]) if "pruned" in t else np.full(n, -1)
    n_prompt = int(meta.get("n_prompt", n))
    added, step = np.full(n, -1), -1
    for q in range(n_prompt, n):
        step += q == n_prompt or sets[q] != sets[q - 1]
        added[q] = step
    gone = (pruned[None, :] >= 0) & (added[:, None] > pruned[None, :])
    layers = np.stack([mask(kind, sets) & ~gone for kind in kinds]).astype(np.uint8)
    return layers[0] if len(kinds) == 1 else layers


def unpack_allowed(bits):
    """A trace's allowed_bits [..., n, ceil(n/8)] as the 0/1 mask [..., n, n]:
    key k of a row is bit k % 8 (least significant first) of byte k // 8."""
    n = bits.shape[-2]
    if bits.shape[-1] != (n + 7) // 8:
        raise ValueError(f"allowed_bits has {bits.shape[-1]} bytes a row; {n} keys need {(n + 7) // 8}")
    keys = np.arange(n)
    dense = (bits[..., keys // 8] >> (keys % 8).astype(np.uint8)) & 1
    if n % 8 and (bits[..., -1] >> (n % 8)).any():
        raise ValueError("allowed_bits sets bits past the last key")
    return dense.astype(np.uint8)


def sha256(path):
    """Of the file, or of model.safetensors for a Hugging Face directory."""
    if os.path.isdir(path):
        path = os.path.join(path, "model.safetensors")
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def trace_tensors(tokens, positions, sets, allowed, logits, attention, pruned=None):
    t = {"tokens": np.asarray(tokens, np.int32), "positions": np.asarray(positions, np.int32),
         "sets": np.asarray(sets, np.int32)}
    uniform = all((allowed[l] == allowed[0]).all() for l in range(len(allowed)))
    t["allowed"] = (allowed[0] if uniform else allowed).astype(np.uint8)
    t["logits"] = logits.astype(np.float32)
    if attention is not None:
        t["attention"] = attention.astype(np.float32)
    if pruned is not None:
        t["pruned"] = np.asarray(pruned, np.int32)
    return t


# -------------------------------------------------------------- compare --

def distances(a, b):
    """KL both ways (nats), JS (bits), cosine, top-k overlaps, argmax agreement of softmax(a), softmax(b)."""
    p, q = softmax(a.astype(np.float64)), softmax(b.astype(np.float64))
    mid = (p + q) / 2
    out = {"kl_isolated_visible": float(np.sum(p * np.log(p / q))), "kl_visible_isolated": float(np.sum(q * np.log(q / p))),
           "js": float(0.5 * np.sum(p * np.log2(p / mid)) + 0.5 * np.sum(q * np.log2(q / mid))),
           "cosine": float(p @ q / np.sqrt((p @ p) * (q @ q)))}
    rank_p, rank_q = np.lexsort((np.arange(len(p)), -p)), np.lexsort((np.arange(len(q)), -q))
    for k in (1, 5, 10):
        out[f"top{k}"] = len(set(rank_p[:k]) & set(rank_q[:k])) / k
    out["argmax_agree"] = bool(rank_p[0] == rank_q[0])
    return out


def teacher_forced(m, run):
    """The isolated run's rows under its own masks and with siblings made
    visible; distances for every member of every parallel set."""
    iso = run["allowed"]
    vis = iso.copy()
    sets = np.asarray(run["sets"])
    n = len(sets)
    for q in range(n):
        for k in range(q):
            if sets[k] == sets[q]:
                vis[:, q, k] = True
    li, _, _ = forward(m, run["tokens"], run["positions"], iso)
    lv, _, _ = forward(m, run["tokens"], run["positions"], vis)
    rows = []
    for s, step in enumerate(run["steps"]):
        if len(step["rows"]) < 2:
            continue
        for i, r in enumerate(step["rows"]):
            rows.append(dict(step=s, member=i, row=r, token=step["tokens"][i], **distances(li[r], lv[r])))
    first = next((st["rows"][1] for st in run["steps"] if len(st["rows"]) > 1), n)
    return {"teacher_forced": rows, "identical_prefix_rows": first,
            "prefix_max_abs_diff": float(np.max(np.abs(li[:first] - lv[:first]))) if first else 0.0}


# --------------------------------------------------------------- golden --

def tempo_defaults(**over):
    cfg = dict(threshold=0.1, max_width=8, max_steps=24, mode="isolated", isolate=None, next_from="last",
               stop_on_empty=False, schedule="constant", final_threshold=1.0, bezier=(0.2, 0.8),
               prune=False, prune_window=4, prune_layers=None, prune_threshold=0.5)
    cfg.update(over)
    return cfg

def golden_cases():
    """(name, kind, model dir key, model file, tokenizer file, arguments)."""
    cases = [
        ("synth-forward", "forward", "synth", "synth-tied.bin", None,
         dict(tokens=[1, 17, 99, 99, 5, 200, 31], positions=[0, 1, 2, 2, 3, 4, 4], mask="isolated")),
        ("synth-untied-forward", "forward", "synth", "synth-untied.bin", None,
         dict(tokens=[1, 40, 41, 42, 43, 7, 8], positions=[0, 1, 1, 1, 2, 3, 3], mask="visible")),
        ("fortune-isolated", "forward", "weights", "fortune.bin", None,
         dict(tokens=[1, 337, 278, 272, 269, 272, 323, 267, 261, 300],
              positions=[0, 1, 2, 3, 4, 5, 6, 7, 7, 7], mask="isolated")),
        ("fortune-visible", "forward", "weights", "fortune.bin", None,
         dict(tokens=[1, 337, 278, 272, 269, 272, 323, 267, 261, 300],
              positions=[0, 1, 2, 3, 4, 5, 6, 7, 7, 7], mask="visible")),
        ("synth-hf-f32-isolated", "forward", "synth", "synth-hf-f32", None,
         dict(tokens=[1, 17, 99, 99, 5, 200, 31, 64], positions=[0, 1, 2, 2, 3, 4, 4, 90], mask="isolated")),
        ("synth-hf-bf16-visible", "forward", "synth", "synth-hf-bf16", None,
         dict(tokens=[1, 40, 41, 42, 43, 7, 8, 250], positions=[0, 1, 1, 1, 2, 3, 3, 200], mask="visible")),
        ("stories-hf-isolated", "forward", "weights", "stories260K-hf", None,
         dict(tokens=[1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298],
              positions=[0, 1, 2, 3, 4, 5, 5, 6, 6, 7, 8], mask="isolated")),
        ("stories-isolated", "forward", "weights", "stories260K.bin", None,
         dict(tokens=[1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298],
              positions=[0, 1, 2, 3, 4, 5, 5, 6, 6, 7, 8], mask="isolated")),
        ("fortune-greedy", "tempo", "weights", "fortune.bin", "fortune-tok512.bin",
         dict(prompt="The cat sat on the", cfg=tempo_defaults(threshold=1.0, max_steps=32))),
    ]
    for prompt in ("The cat sat on the", "Once upon a time there lived"):
        slug = prompt.split()[0].lower()
        for mode in ("isolated", "visible"):
            cases.append((f"fortune-tempo-{slug}-{mode}", "tempo", "weights", "fortune.bin", "fortune-tok512.bin",
                          dict(prompt=prompt, cfg=tempo_defaults(mode=mode))))
    cases.append(("fortune-tempo-pruned", "tempo", "weights", "fortune.bin", "fortune-tok512.bin",
                  dict(prompt="The cat sat on the", cfg=tempo_defaults(threshold=0.05, prune=True))))
    cases.append(("fortune-tempo-dynamic", "tempo", "weights", "fortune.bin", "fortune-tok512.bin",
                  dict(prompt="Once upon a time there lived", cfg=tempo_defaults(threshold=0.05, schedule="bezier"))))
    # the whole curve: 12 steps from 0.05 to its final 0.3 (a dynamic run that reaches its last step)
    cases.append(("fortune-tempo-dynamic-end", "tempo", "weights", "fortune.bin", "fortune-tok512.bin",
                  dict(prompt="The cat sat on the", cfg=tempo_defaults(threshold=0.05, max_steps=12, schedule="bezier",
                                                                        final_threshold=0.3, bezier=(0.1, 0.7)))))
    cases.append(("stories-tempo-layers", "tempo", "weights", "stories260K.bin", "tok512.bin",
                  dict(prompt="Once upon a time", cfg=tempo_defaults(threshold=0.08, isolate=(1, 3)))))
    gguf_tokens = [1, 17, 99, 99, 5, 200, 31, 64, 383]
    for i, dtype in enumerate(("f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q5_k", "q6_k")):
        cases.append((f"synth-gguf-{dtype}", "forward", "synth", f"synth-gguf-{dtype}.gguf", None,
                      dict(tokens=gguf_tokens, positions=[0, 1, 2, 2, 3, 4, 4, 5, 200], mask=("isolated", "visible")[i % 2])))
    return cases


def dequant_golden(synth, out):
    """The sha256 of every tensor of the synthetic GGUF files, dequantized to float32 little-endian bytes."""
    result = {}
    for dtype in ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q5_k", "q6_k"):
        path = os.path.join(synth, f"synth-gguf-{dtype}.gguf")
        _, tensors = read_gguf(path)
        result[f"synth-gguf-{dtype}.gguf"] = dict(model_sha256=sha256(path), tensors={
            k: hashlib.sha256(v.astype("<f4").tobytes()).hexdigest() for k, v in sorted(tensors.items())})
    write_json_golden(os.path.join(out, "gguf-dequant.json"), result)


def run_case(case, dirs):
    name, kind, where, model_file, tok_file, args = case
    model_path = os.path.join(dirs[where], model_file)
    if not os.path.exists(model_path):
        sys.exit(f"reference.py: model file {model_path} is missing (case {name})")
    m = Model(model_path)
    meta = dict(case=name, kind=kind, model=model_file, model_dir=where, model_sha256=sha256(model_path))
    if kind == "forward":
        tokens, positions = args["tokens"], args["positions"]
        allowed = np.broadcast_to(mask(args["mask"], positions), (m.n_layers, len(tokens), len(tokens)))
        logits, attention, hidden = forward(m, tokens, positions, allowed)
        meta["mask"] = args["mask"]
        t = trace_tensors(tokens, positions, positions, allowed, logits, attention)
        t["hidden"] = hidden.astype(np.float32)
        return t, meta
    tok = Tokenizer(os.path.join(dirs[where], tok_file), m.vocab)
    cfg = dict(args["cfg"])
    if cfg["isolate"] is None:
        cfg["isolate"] = (0, m.n_layers - 1)
    if cfg["prune_layers"] is None:
        cfg["prune_layers"] = max(1, m.n_layers // 2)
    prompt = tok.encode(args["prompt"])
    run = tempo(m, prompt, cfg)
    meta.update(tokenizer=tok_file, prompt=args["prompt"], n_prompt=len(prompt), stop=run["stop"],
                steps=len(run["steps"]), settings=json.dumps(cfg))
    t = trace_tensors(run["tokens"], run["positions"], run["sets"], run["allowed"], run["logits"], None,
                      run["pruned"])
    t["thresholds"] = np.asarray([s["threshold"] for s in run["steps"]], np.float32)
    return t, meta


def compare_golden(dirs, out):
    """Teacher-forced isolated vs visible distances for one prompt on fortune.bin."""
    model_path = os.path.join(dirs["weights"], "fortune.bin")
    m = Model(model_path)
    tok = Tokenizer(os.path.join(dirs["weights"], "fortune-tok512.bin"), m.vocab)
    prompt = "The cat sat on the"
    cfg = tempo_defaults(threshold=0.05, max_steps=16, isolate=(0, m.n_layers - 1))
    result = teacher_forced(m, tempo(m, tok.encode(prompt), cfg))
    result.update(model="fortune.bin", model_dir="weights", model_sha256=sha256(model_path), prompt=prompt,
                  threshold=0.05, max_tokens=16)
    write_json_golden(os.path.join(out, "compare-fortune.json"), result)


def write_json_golden(path, result):
    """Writes a JSON golden atomically and says whether it changed."""
    old = open(path).read() if os.path.exists(path) else None
    text = json.dumps(result, indent=1)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    name = os.path.basename(path)[:-len(".json")]
    print(f"{name}: " + ("new" if old is None else "unchanged" if old == text else "changed"))


def llama3_inv_freq(theta, head_dim, factor, low, high, original):
    """transformers' _compute_llama3_parameters, written out in float64."""
    inv = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    low_wavelen, high_wavelen = original / low, original / high
    wavelen = 2 * np.pi / inv
    scaled = np.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (original / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return np.where(medium, smoothed, scaled)


def rope_golden(out):
    freq = llama3_inv_freq(500000.0, 128, 32.0, 1.0, 4.0, 8192)
    text = json.dumps({"config": "Llama-3.2-3B: rope_theta 500000, head_dim 128, llama3 factor 32, low 1, high 4, "
                                 "original_max_position_embeddings 8192", "inv_freq": [float(x) for x in freq]}, indent=1)
    path = os.path.join(out, "llama3-rope.json")
    old = open(path).read() if os.path.exists(path) else None
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    print("llama3-rope: " + ("new" if old is None else "unchanged" if old == text else "changed"))


CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "utf8-corpus.txt")


def tokenizer_golden(synth, out):
    """Ids (and pre-tokens, added tokens not split out) of every corpus line and
    of the whole corpus, for each synthetic tokenizer.json."""
    corpus = open(CORPUS, encoding="utf-8", newline="").read()
    for name in ("synth-hf-f32", "synth-hf-bf16"):
        path = os.path.join(synth, name, "tokenizer.json")
        vocab = json.load(open(os.path.join(synth, name, "config.json")))["vocab_size"]
        tok = ByteLevelBPE(path, vocab)
        cases = []
        for text in corpus.split("\n") + [corpus]:
            ids = tok.encode(text)
            assert tok.decode(ids[len(tok.prefix):len(ids) - len(tok.suffix)]) == text
            cases.append({"text": text, "ids": ids, "pre_tokens": tok.pieces(text)})
        text = json.dumps({"tokenizer": name, "tokenizer_sha256": sha256(path), "cases": cases}, ensure_ascii=False, indent=1)
        golden = os.path.join(out, f"tokenizer-{name}.json")
        old = open(golden, encoding="utf-8").read() if os.path.exists(golden) else None
        with open(golden + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(golden + ".tmp", golden)
        print(f"tokenizer-{name}: " + ("new" if old is None else "unchanged" if old == text else "changed"))


def cmd_golden(a):
    dirs = {"weights": a.weights, "synth": a.synth}
    os.makedirs(a.out, exist_ok=True)
    rope_golden(a.out)
    tokenizer_golden(a.synth, a.out)
    compare_golden(dirs, a.out)
    dequant_golden(a.synth, a.out)
    changed = 0
    for case in golden_cases():
        path = os.path.join(a.out, case[0] + ".safetensors")
        old = read_safetensors(path)[0] if os.path.exists(path) else None
        tensors, meta = run_case(case, dirs)
        write_safetensors(path, tensors, meta)
        if old is None:
            print(f"{case[0]}: new")
            changed += 1
            continue
        notes = []
        for k, v in tensors.items():
            if k not in old or old[k].shape != v.shape:
                notes.append(f"{k} shape {None if k not in old else old[k].shape} -> {v.shape}")
            elif not np.array_equal(old[k], v):
                notes.append(f"{k} max abs change {np.max(np.abs(old[k].astype(np.float64) - v)):.3g}")
        changed += bool(notes)
        print(f"{case[0]}: " + ("; ".join(notes) if notes else "unchanged"))
    print(f"{changed} golden file(s) changed")


def cmd_forward(a):
    m = Model(a.model)
    tokens = [int(x) for x in a.tokens.split(",")]
    positions = [int(x) for x in a.positions.split(",")] if a.positions else list(range(len(tokens)))
    allowed = np.broadcast_to(mask(a.mask, positions), (m.n_layers, len(tokens), len(tokens)))
    logits, attention, _ = forward(m, tokens, positions, allowed)
    write_safetensors(a.out, trace_tensors(tokens, positions, positions, allowed, logits, attention),
                      dict(model=os.path.basename(a.model)))


def cmd_tempo(a):
    m = Model(a.model)
    tok = Tokenizer(a.tokenizer, m.vocab)
    cfg = tempo_defaults(threshold=a.threshold, max_steps=a.n, mode=a.mode, isolate=(0, m.n_layers - 1),
                         prune=a.prune, prune_layers=max(1, m.n_layers // 2))
    run = tempo(m, tok.encode(a.prompt), cfg)
    for s in run["steps"]:
        print(s["position"], s["tokens"])
    if a.out:
        write_safetensors(a.out, trace_tensors(run["tokens"], run["positions"], run["sets"], run["allowed"],
                                               run["logits"], run["attention"], run["pruned"]),
                          dict(model=os.path.basename(a.model)))


def cmd_encode(a):
    print(",".join(str(i) for i in ByteLevelBPE(a.tokenizer, a.vocab).encode(a.text)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("golden")
    g.add_argument("--weights", required=True)
    g.add_argument("--synth", required=True)
    g.add_argument("--out", required=True)
    f = sub.add_parser("forward")
    f.add_argument("model")
    f.add_argument("--tokens", required=True)
    f.add_argument("--positions")
    f.add_argument("--mask", default="causal", choices=["causal", "isolated", "visible"])
    f.add_argument("--out", required=True)
    t = sub.add_parser("tempo")
    t.add_argument("model")
    t.add_argument("tokenizer")
    t.add_argument("--prompt", required=True)
    t.add_argument("--threshold", type=float, default=0.1)
    t.add_argument("-n", type=int, default=24)
    t.add_argument("--mode", default="isolated", choices=["isolated", "visible"])
    t.add_argument("--prune", action="store_true")
    t.add_argument("--out")
    e = sub.add_parser("encode")
    e.add_argument("tokenizer")
    e.add_argument("--vocab", type=int, required=True)
    e.add_argument("--text", required=True)
    a = p.parse_args()
    {"golden": cmd_golden, "forward": cmd_forward, "tempo": cmd_tempo, "encode": cmd_encode}[a.command](a)


if __name__ == "__main__":
    main()
