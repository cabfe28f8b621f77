"""TEMPO loops on tests/torch_llama.py, written as a Python engine would
write them against the Hugging Face call signature: one correct loop and
four broken ones, three of them faults seen in a real engine (NOTES.md section 8).

    correct             every member of a set is fed at P + step, in one call,
                        with the isolated (or visible) mask over the cache rows
    doubled             the prompt primes the cache, then its last token is fed
                        again (position P, from the cache length): that token
                        is in the cache twice and every step sits one position high
    last-member-only    only the last (least probable) member of each set is fed
    mask-over-selected  last-member-only, and the attention is patched to apply the
                        isolation mask built over the list of all selected tokens
                        (prompt + every member) to the cache rows by index: cache
                        row r uses row r of that mask, so it hides cache rows whose
                        index is a sibling's index in the list
    stale-logits        fed as correct, but each set is chosen from the logits of
                        the call before the last one (the prompt's for steps 0 and 1)

A loop may pass its positions as `cache_position` alone (transformers then
uses them as the RoPE positions) and ask for the logits of its last row only
(`num_logits_to_keep=1`, as generate() does). Each returns what it did (prompt, steps, the sets tempo's rule gives on the
right logits, the rows it fed and, for mask-over-selected, the mask cells it hid), which the tests compare with
what `tempo audit` reports.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from tempo_capture import additive_mask, tempo_mask  # noqa: E402

VARIANTS = ("correct", "doubled", "last-member-only", "mask-over-selected", "stale-logits")


def select(logits, threshold, max_width):
    """tempo's rule: p = softmax (in double, kept as float32); every token with
    p >= threshold, most probable first (ties: lower id), at most max_width; else the argmax."""
    z = logits.astype(np.float64)
    p = np.exp(z - z.max())
    p = (p / p.sum()).astype(np.float32)
    chosen = [int(v) for v in np.nonzero(p >= np.float32(threshold))[0]]
    chosen.sort(key=lambda v: (-p[v], v))
    chosen = chosen[:max_width] or [int(np.argmax(p))]
    return chosen, [float(p[v]) for v in chosen]


def ids(tokens):
    return torch.tensor([list(tokens)], dtype=torch.long)


def step_mask(mode, n_past, k):
    """Additive 4D mask of k rows of one set appended after n_past rows."""
    sets = np.concatenate([np.arange(n_past), np.full(k, n_past)])
    allowed = tempo_mask("isolated" if mode == "isolated" else "visible", sets)[n_past:]
    return torch.tensor(additive_mask(allowed))[None, None]


class WrongIsolation:
    """Patched attention of mask-over-selected: the isolation mask over the list
    of selected tokens (one entry per member, fed or not), applied to the cache
    rows by index. Records the cells it hides that causal order would show."""

    def __init__(self, prompt):
        self.sets, self.hidden = list(range(len(prompt))), []

    def add_step(self, members, set_id):
        self.sets += [set_id] * len(members)

    def __call__(self, layer, allowed):
        k, n_keys = allowed.shape
        wrong = tempo_mask("isolated", self.sets)[n_keys - k:n_keys, :n_keys].astype(bool)
        if layer == 0:
            causal = tempo_mask("causal", range(n_keys))[n_keys - k:].astype(bool)
            self.hidden += [(int(n_keys - k + i), int(key)) for i, key in zip(*np.nonzero(causal & ~wrong))]
        return torch.tensor(wrong)


def run(model, prompt, n_steps, variant="correct", mode="isolated", threshold=0.1, max_width=8, on_select=None,
        positions_as="position_ids", logits_to_keep=0):
    """Runs the loop, handing each step's set to on_select(tokens, probs) (a
    Recorder's select); returns a dict: prompt, steps (tokens, probs), right (the
    set of each step by tempo's rule on the newest logits), fed rows
    (token, position, step; step None for the doubled token), hidden (row, key) cells.
    positions_as: "position_ids" ([1, k]) or "cache_position" ([k], alone);
    logits_to_keep: passed as num_logits_to_keep when not 0."""
    P = len(prompt)
    keep = {"num_logits_to_keep": logits_to_keep} if logits_to_keep else {}
    out = model(input_ids=ids(prompt), output_attentions=True, **keep)  # causal, positions 0..P-1 from the cache length
    cache, logits, fed, offset = out.past_key_values, out.logits[0, -1], [], 0
    if variant == "doubled":
        out = model(input_ids=ids(prompt[-1:]), past_key_values=cache, output_attentions=True, **keep)
        cache, logits, offset = out.past_key_values, out.logits[0, -1], 1
        fed.append((prompt[-1], P, None))
    patch = WrongIsolation(prompt) if variant == "mask-over-selected" else None
    steps, right, previous = [], [], logits
    for s in range(n_steps):
        members, probs = select((previous if variant == "stale-logits" else logits).numpy(), threshold, max_width)
        steps.append((members, probs))
        right.append(select(logits.numpy(), threshold, max_width)[0])
        if on_select:
            on_select(members, probs)
        position, n_past = P + offset + s, cache[0][0].shape[2]
        if variant in ("correct", "doubled", "stale-logits"):
            shape = (len(members),) if positions_as == "cache_position" else (1, len(members))
            feed, kwargs = members, {"attention_mask": step_mask(mode, n_past, len(members)),
                                     positions_as: torch.full(shape, position)}
        else:  # one row a step: the 2D all-ones mask, positions from the cache length
            feed, kwargs = members[-1:], {"attention_mask": torch.ones((1, n_past + 1), dtype=torch.long)}
        if patch:
            patch.add_step(members, position)
            model.mask_patch = patch
        out = model(input_ids=ids(feed), past_key_values=cache, output_attentions=True, **kwargs, **keep)
        model.mask_patch = None
        cache, previous, logits = out.past_key_values, logits, out.logits[0, -1]
        fed += [(t, position, s) for t in feed]
    return {"prompt": list(prompt), "steps": steps, "right": right, "fed": fed, "hidden": patch.hidden if patch else []}
