"""A small PyTorch Llama with the Hugging Face call signature, for testing
tools/tempo_capture.py. Written from the equations in NOTES.md section 1:

    xn = RMSNorm(x) * w;  q, k, v = xn Wq^T, xn Wk^T, xn Wv^T;  q, k = RoPE(q, k, position_ids)
    p = softmax(q k^T / sqrt(hd) over allowed keys);  x += (p v) Wo^T
    x += (silu(RMSNorm(x) W1^T) * (RMSNorm(x) W3^T)) W2^T;  logits = RMSNorm(x) Wcls^T

It loads a llama2.c checkpoint (.bin: adjacent-pair RoPE) or a Hugging Face
directory (config.json + model.safetensors: rotate-half RoPE). The KV cache
is the legacy transformers one: a tuple of (key, value) per layer, each
[batch, kv_heads, rows, head_dim], keys rotated at their own positions.

    model = Llama.load(path)
    out = model(input_ids=ids, attention_mask=None, position_ids=None, past_key_values=None,
                output_attentions=False, cache_position=None, num_logits_to_keep=0)
    out.logits, out.past_key_values, out.attentions

Conventions of transformers 4.47 (modeling_llama.py), kept here because the
recorder must follow them:
  * `cache_position` defaults to arange(cached rows, cached rows + k), and
    `position_ids` to cache_position.unsqueeze(0): a caller that passes
    cache_position alone sets the RoPE positions with it;
  * `attention_mask`: None (causal), 2D [1, keys] key padding, combined with
    causal order over cache_position (key j is hidden from query i when
    j > cache_position[i]), or 4D [1, 1, k, keys] taken as it is, boolean
    (True = may attend) or additive;
  * logits are computed for hidden_states[:, -num_logits_to_keep:] (0: all rows);
  * an attention module returns its probabilities only under output_attentions=True.
`generate` below is greedy search as GenerationMixin.generate runs it, in the
parts that read forward's signature.
`model.mask_patch`, when set, is called as mask_patch(layer, allowed) with the
[k, keys] boolean mask inside each attention module and returns the mask to
apply: a stand-in for engines that patch attention.
"""
import inspect
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from tempo_capture import read_trace  # noqa: E402  (safetensors reader)


class Output:
    """What a Hugging Face causal LM returns (attribute access, out[0] = logits)."""

    def __init__(self, logits, past_key_values, attentions):
        self.logits, self.past_key_values, self.attentions = logits, past_key_values, attentions

    def __getitem__(self, i):
        return (self.logits, self.past_key_values, self.attentions)[i]


def rms_norm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope(x, positions, inv_freq, rotate_half):
    """Rotates pairs of x [B, heads, k, hd] by positions * inv_freq: (i, i + hd/2) or (2i, 2i+1)."""
    angles = positions.to(torch.float64)[:, None] * inv_freq[None, :]
    cos, sin = torch.cos(angles).float(), torch.sin(angles).float()
    if rotate_half:
        a, b = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
        return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)


def allowed_keys(mask, n_past, cache_position):
    """[1 or H, k, keys] boolean from the attention_mask forms listed above."""
    k = cache_position.shape[0]
    n_keys = n_past + k
    causal = torch.arange(n_keys)[None, :] <= cache_position[:, None]
    if mask is None:
        return causal[None]
    if mask.dim() == 2:
        return (causal & (mask[0][None, :] != 0))[None]
    mask = mask[0, :, :, :n_keys]
    return mask if mask.dtype == torch.bool else mask > -1000.0


class Attention(torch.nn.Module):
    def __init__(self, model, layer):
        super().__init__()
        self.model, self.layer = [model], layer  # a list: not a submodule

    def forward(self, x, positions, allowed, past, output_attentions):
        m, w = self.model[0], self.model[0].w
        B, k, _ = x.shape
        hd, H, KV = m.hd, m.n_heads, m.n_kv
        q = (x @ w["wq"][self.layer].T).view(B, k, H, hd).transpose(1, 2)
        key = (x @ w["wk"][self.layer].T).view(B, k, KV, hd).transpose(1, 2)
        value = (x @ w["wv"][self.layer].T).view(B, k, KV, hd).transpose(1, 2)
        q, key = rope(q, positions, m.inv_freq, m.rotate_half), rope(key, positions, m.inv_freq, m.rotate_half)
        if past is not None:
            key, value = torch.cat([past[0], key], dim=2), torch.cat([past[1], value], dim=2)
        if m.mask_patch is not None:
            allowed = m.mask_patch(self.layer, allowed[0])[None]
        scores = q @ key.repeat_interleave(H // KV, dim=1).transpose(2, 3) / hd ** 0.5
        probs = torch.softmax(scores.masked_fill(~allowed[None], float("-inf")), dim=-1)
        out = (probs @ value.repeat_interleave(H // KV, dim=1)).transpose(1, 2).reshape(B, k, H * hd)
        return out @ w["wo"][self.layer].T, probs if output_attentions else None, (key, value)


class Llama(torch.nn.Module):
    def __init__(self, cfg, weights, rotate_half):
        super().__init__()
        self.dim, self.n_layers, self.n_heads, self.n_kv = cfg["dim"], cfg["n_layers"], cfg["n_heads"], cfg["n_kv"]
        self.vocab, self.hd, self.eps = cfg["vocab"], cfg["dim"] // cfg["n_heads"], cfg["eps"]
        self.rotate_half, self.mask_patch = rotate_half, None
        self.w = {name: torch.from_numpy(np.array(a, np.float32)) for name, a in weights.items()}
        self.inv_freq = cfg["theta"] ** (-torch.arange(0, self.hd, 2, dtype=torch.float64) / self.hd)
        self.attn = torch.nn.ModuleList([Attention(self, l) for l in range(self.n_layers)])

    def generate(self, input_ids, max_new_tokens=20, output_attentions=False):
        """As transformers' model.generate(...) with greedy search (the function below)."""
        return generate(self, input_ids, max_new_tokens, output_attentions)

    @staticmethod
    def load(path):
        return Llama(*(load_hf(path) if os.path.isdir(path) else load_llama2c(path)))

    @torch.no_grad()
    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, cache_position=None, num_logits_to_keep=0, **kwargs):
        if inputs_embeds is not None or labels is not None or output_hidden_states:
            raise ValueError("torch_llama: inputs_embeds, labels and output_hidden_states are not implemented")
        w, k = self.w, input_ids.shape[1]
        n_past = 0 if not past_key_values else past_key_values[0][0].shape[2]
        if cache_position is None:
            cache_position = torch.arange(n_past, n_past + k)
        if position_ids is None:
            position_ids = cache_position.unsqueeze(0)
        positions = position_ids.reshape(-1)
        allowed = allowed_keys(attention_mask, n_past, cache_position.reshape(-1))
        x, cache, attentions = w["emb"][input_ids.long()], [], []
        for l in range(self.n_layers):
            past = past_key_values[l] if past_key_values else None
            out, probs, kv = self.attn[l](rms_norm(x, w["rms_att"][l], self.eps), positions, allowed, past,
                                          output_attentions)
            x = x + out
            xn = rms_norm(x, w["rms_ffn"][l], self.eps)
            x = x + (torch.nn.functional.silu(xn @ w["w1"][l].T) * (xn @ w["w3"][l].T)) @ w["w2"][l].T
            cache.append(kv)
            attentions.append(probs)
        logits = rms_norm(x[:, -num_logits_to_keep:, :], w["rms_final"], self.eps) @ w["wcls"].T
        return Output(logits, tuple(cache) if use_cache is not False else None,
                      tuple(attentions) if output_attentions else None)


@torch.no_grad()
def generate(model, input_ids, max_new_tokens, output_attentions=False):
    """Greedy search as transformers 4.47 runs it (generate, _sample,
    prepare_inputs_for_generation, _update_model_kwargs_for_generation), in
    the parts that depend on model.forward's signature: an all-ones
    attention_mask only when forward takes `attention_mask`, position_ids
    from its cumulative sum only when forward takes `position_ids`, and
    num_logits_to_keep=1 only when forward takes it. cache_position is always
    passed. Returns the prompt and the new tokens, [1, P + max_new_tokens]."""
    params = set(inspect.signature(model.forward).parameters)
    kwargs = {"use_cache": True}
    if "attention_mask" in params:
        kwargs["attention_mask"] = torch.ones_like(input_ids)
    if "num_logits_to_keep" in params:
        kwargs["num_logits_to_keep"] = 1
    cache_position, past = torch.arange(input_ids.shape[1]), None
    for _ in range(max_new_tokens):
        inputs = dict(kwargs, cache_position=cache_position, input_ids=input_ids[:, cache_position])
        if past is not None:
            inputs["past_key_values"] = past
        if "attention_mask" in kwargs and "position_ids" in params:
            position_ids = kwargs["attention_mask"].long().cumsum(-1) - 1
            inputs["position_ids"] = position_ids[:, -inputs["input_ids"].shape[1]:]
        if output_attentions:
            inputs["output_attentions"] = True
        out = model(**inputs)
        token = out.logits[:, -1, :].argmax(-1, keepdim=True)
        input_ids, past = torch.cat([input_ids, token], dim=-1), out.past_key_values
        if "attention_mask" in kwargs:
            kwargs["attention_mask"] = torch.cat([kwargs["attention_mask"], torch.ones_like(token)], dim=-1)
        cache_position = cache_position[-1:] + 1
    return input_ids


def load_llama2c(path):
    raw = open(path, "rb").read()
    dim, hidden, L, H, KV, vocab, seq_len = struct.unpack("7i", raw[:28])
    flat, off, hd = np.frombuffer(raw, "<f4", offset=28), 0, dim // H

    def take(*shape):
        nonlocal off
        size = int(np.prod(shape))
        off += size
        return flat[off - size:off].reshape(shape)
    names = [("emb", (abs(vocab), dim)), ("rms_att", (L, dim)), ("wq", (L, dim, dim)), ("wk", (L, KV * hd, dim)),
             ("wv", (L, KV * hd, dim)), ("wo", (L, dim, dim)), ("rms_ffn", (L, dim)), ("w1", (L, hidden, dim)),
             ("w2", (L, dim, hidden)), ("w3", (L, hidden, dim)), ("rms_final", (dim,)), ("freq_cis", (seq_len, hd))]
    w = {name: take(*shape) for name, shape in names}
    w["wcls"] = w["emb"] if vocab > 0 else take(-vocab, dim)
    del w["freq_cis"]
    cfg = {"dim": dim, "n_layers": L, "n_heads": H, "n_kv": KV, "vocab": abs(vocab), "eps": 1e-5, "theta": 10000.0}
    return cfg, w, False


def load_hf(path):
    c = json.load(open(os.path.join(path, "config.json")))
    if c.get("rope_scaling"):
        raise ValueError("torch_llama: rope_scaling is not implemented")
    t = {}
    for name in sorted(os.listdir(path)):
        if name.endswith(".safetensors"):
            t.update(read_trace(os.path.join(path, name))[0])
    L = c["num_hidden_layers"]

    def stack(part):
        return np.stack([t[f"model.layers.{l}.{part}.weight"] for l in range(L)])
    w = {"emb": t["model.embed_tokens.weight"], "rms_final": t["model.norm.weight"],
         "rms_att": stack("input_layernorm"), "rms_ffn": stack("post_attention_layernorm"),
         "wq": stack("self_attn.q_proj"), "wk": stack("self_attn.k_proj"), "wv": stack("self_attn.v_proj"),
         "wo": stack("self_attn.o_proj"), "w1": stack("mlp.gate_proj"), "w3": stack("mlp.up_proj"),
         "w2": stack("mlp.down_proj")}
    w["wcls"] = w["emb"] if c.get("tie_word_embeddings", False) else t["lm_head.weight"]
    cfg = {"dim": c["hidden_size"], "n_layers": L, "n_heads": c["num_attention_heads"],
           "n_kv": c.get("num_key_value_heads", c["num_attention_heads"]), "vocab": c["vocab_size"],
           "eps": c.get("rms_norm_eps", 1e-6), "theta": c.get("rope_theta", 10000.0)}
    if c.get("head_dim", cfg["dim"] // cfg["n_heads"]) != cfg["dim"] // cfg["n_heads"]:
        raise ValueError("torch_llama: head_dim other than hidden_size / heads is not implemented")
    return cfg, w, True
