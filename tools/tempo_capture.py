"""tempo_capture: record a Python TEMPO engine's run as a tempo trace.

A trace is a safetensors file (README.md, "Trace format"). This module needs
only NumPy for reading and writing traces and for building TEMPO position maps
and masks; PyTorch is used only by `Recorder`, which wraps a model whose forward
follows the Hugging Face call signature (transformers' LlamaForCausalLM):

    from tempo_capture import Recorder
    with Recorder(model, engine="my-engine 0.3") as rec:
        run_my_engine(model, ...)               # calls model(input_ids=..., ...) as usual
        # after each step: rec.select(tokens, probs)   (the engine's own set, most probable first)
    rec.set_metadata(mode="isolated", threshold=0.1, max_width=8, n_prompt=12, next_from="last")
    rec.write("run.st")
    # then: tempo verify -m MODEL run.st ; tempo audit -m MODEL run.st

The wrapper keeps forward's signature (inspect.signature), so code that reads
it, as generate() does, behaves as without the recorder.

Steps: select() appends one set to the trace's `selected`; it is not tied to a
forward call. Call it once per step, in order, inside the engine's loop or
after the run. Select only sets whose members were fed: the audit reports a
selected member with no row (selected-not-fed), so when the engine picks a
last set and stops, feed it (one more forward call) or leave it out. An
engine with no cap on a set's width records max_width as the vocabulary size
(no cap: max_width=model.config.vocab_size).

An engine that runs its own loop (generate()):

    with Recorder(model, engine="transformers generate(), greedy") as rec:
        out = model.generate(prompt_ids, max_new_tokens=8, output_attentions=True)
    for token in out[0, prompt_ids.shape[1]:-1].tolist():  # the last new token is never fed
        rec.select([token])
    rec.set_metadata(mode="isolated", threshold=1.0, max_width=1,  # greedy: the argmax alone
                     n_prompt=prompt_ids.shape[1], next_from="last")
    rec.write("greedy.st")

Positions and causal order follow transformers: position_ids when given, else
cache_position, else the cache length onwards.

Which mask is recorded:
  * by default, the mask the engine PASSED to the model for each call
    (`attention_mask`: None or 2D key-padding masks are combined with causal
    order over cache_position, as transformers does; 4D masks are taken as
    they are, boolean True = may attend, additive entries below -1000 =
    hidden since exp(-1000) is 0 in float). When the model returns its
    attention (output_attentions=True), write() checks that mask against it:
    a key the mask allows with probability exactly 0 in every head of a
    layer, or a key it hides with a probability > 0, means the model applied
    another mask (patched attention), and write() refuses;
  * with `hook_attention=True`, the mask as APPLIED inside every attention
    module, read from the attention probabilities the module returns: key j is
    allowed for query i in layer l when any head gives it a probability > 0.
    Use this when the engine changes the mask inside the model (patched
    attention); every call must pass output_attentions=True. A probability
    that underflows to exactly 0 would read as hidden.

Rows: every call appends its input rows to the rows already in the cache. The
cache length is read from `past_key_values` (a legacy tuple of (key, value) per
layer, or an object with get_seq_length()); when it is shorter than the rows
recorded (the engine dropped or restarted its cache), the rows past it are
forgotten, so the trace always holds the rows that are in the cache, in order,
each with the mask it was computed under, its logits and, when the model
returned them, its attention.

Logits: a call with num_logits_to_keep=m returns logits for its last m rows
only. When some rows have none, the trace holds no `logits` tensor (tempo reads
it as one row per row) but `kept_rows` (I32[m]) and `kept_logits` (F32[m, vocab]):
the rows that have logits (all rows of the trace numbering) and those logits.
verify compares the logits on those rows ("logits compared on 12 of 40 rows
(kept_rows)"), and the audit checks selection from them: the row that predicts
a step is a call's last row, so it is kept (with next_from mean it also needs
the previous step's members, which num_logits_to_keep=1 leaves out; the audit
names each step it could not check). A trace with neither logits nor attention
gives verify nothing to compare: an error, not a PASS.
"""
import functools
import inspect
import json
import os
import struct

import numpy as np

HIDDEN_BELOW = -1000.0  # an additive mask entry below this hides the key
READ_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I32": "<i4", "I64": "<i8", "U8": "u1", "BOOL": "u1"}
WRITE_DTYPES = {np.dtype("float32"): "F32", np.dtype("int32"): "I32", np.dtype("uint8"): "U8"}


# ------------------------------------------------------------ traces --

def read_trace(path):
    """(tensors, metadata) of a safetensors file: dict name -> ndarray, dict key -> str.
    Also reads checkpoints (model.safetensors); BF16 is widened to float32."""
    raw = open(path, "rb").read()
    if len(raw) < 8:
        raise ValueError(f"bad trace {path}: not a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"bad trace {path}: header of {n} bytes is longer than the file")
    header = json.loads(raw[8:8 + n])
    metadata = header.pop("__metadata__", {}) or {}
    data = memoryview(raw)[8 + n:]
    tensors = {}
    for name, h in header.items():
        begin, end = h["data_offsets"]
        if h["dtype"] == "BF16":  # the upper 16 bits of a float32
            half = np.frombuffer(data[begin:end], dtype="<u2").astype(np.uint32)
            tensors[name] = (half << 16).view(np.float32).reshape(h["shape"])
        elif h["dtype"] in READ_DTYPES:
            tensors[name] = np.frombuffer(data[begin:end], dtype=READ_DTYPES[h["dtype"]]).reshape(h["shape"])
        else:
            raise ValueError(f"bad trace {path}: tensor {name} has unsupported dtype {h['dtype']}")
    if "allowed_bits" in tensors:  # tempo's packed mask: key k of a row is bit k % 8 of byte k // 8
        bits = tensors.pop("allowed_bits")
        tensors["allowed"] = np.unpackbits(bits, axis=-1, count=bits.shape[-2], bitorder="little")
    return tensors, metadata


def write_trace(path, tensors, metadata=None):
    """Writes F32, I32 and U8 arrays (others are converted: floats to F32,
    integers to I32, bool to U8) and string metadata; to a temporary name, then renamed."""
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        a = np.asarray(array)
        if a.dtype == np.bool_:
            a = a.astype(np.uint8)
        elif a.dtype.kind == "f":
            a = a.astype(np.float32)
        elif a.dtype.kind in "iu" and a.dtype != np.uint8:
            a = a.astype(np.int32)
        blob = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": WRITE_DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    os.replace(tmp, path)


# ------------------------------------------- position maps and masks --

def tempo_rows(prompt, steps):
    """Rows of a TEMPO run that feeds every member: the prompt at positions
    0..P-1, then each step's members at P + step. Returns tokens, positions,
    sets (set id = logical position), as int32 arrays."""
    tokens, positions = list(prompt), list(range(len(prompt)))
    for step, members in enumerate(steps):
        tokens += list(members)
        positions += [len(prompt) + step] * len(members)
    positions = np.asarray(positions, np.int32)
    return np.asarray(tokens, np.int32), positions, positions.copy()


def tempo_mask(kind, sets, pruned=None, row_steps=None):
    """The n x n mask (row = query, column = key, 1 = may attend) of rows grouped by `sets`:
        causal / visible:  key <= query
        isolated:          key <= query and (key == query or sets[key] != sets[query])
    With `pruned` (step that pruned each row, -1 if never) and `row_steps`
    (the step each row was fed at, -1 for the prompt), a pruned key is hidden
    from queries of later steps."""
    sets = np.asarray(sets)
    n = len(sets)
    q, k = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    allowed = k <= q
    if kind == "isolated":
        allowed &= (k == q) | (sets[None, :] != sets[:, None])
    elif kind not in ("causal", "visible"):
        raise ValueError(f"mask kind must be causal, visible or isolated, got {kind!r}")
    if pruned is not None:
        pruned, row_steps = np.asarray(pruned), np.asarray(row_steps)
        allowed &= ~((pruned[None, :] >= 0) & (row_steps[:, None] > pruned[None, :]))
    return allowed.astype(np.uint8)


def additive_mask(allowed, dtype_min=-np.inf):
    """A 0 / -inf additive mask from a 0/1 one (shape kept)."""
    return np.where(np.asarray(allowed) != 0, 0.0, dtype_min).astype(np.float32)


def allowed_from_mask(mask, n_past, k, cache_position=None):
    """The [k, n_past + k] 0/1 mask of a call's k new rows from an
    attention_mask as Hugging Face models take it: None (causal), 2D [1, keys]
    (key padding, combined with causal order) or 4D [1, 1 or H, k, keys]
    (boolean True = may attend, or additive: below HIDDEN_BELOW = hidden).
    Causal order, as transformers builds it: key j <= cache_position[i]
    (cache_position defaults to n_past + i)."""
    n_keys = n_past + k
    query = n_past + np.arange(k) if cache_position is None else np.asarray(cache_position).reshape(-1)
    causal = np.arange(n_keys)[None, :] <= query[:, None]
    if mask is None:
        return causal.astype(np.uint8)
    m = np.asarray(mask)
    if m.ndim == 2:
        if m.shape != (1, n_keys):
            raise ValueError(f"2D attention_mask has shape {m.shape}, expected (1, {n_keys})")
        return (causal & (m[0][None, :] != 0)).astype(np.uint8)
    if m.ndim != 4 or m.shape[0] != 1 or m.shape[2] != k or m.shape[3] < n_keys:
        raise ValueError(f"4D attention_mask has shape {m.shape}, expected (1, 1 or H, {k}, >= {n_keys})")
    m = m[:, :, :, :n_keys]
    allowed = m if m.dtype == np.bool_ else m > HIDDEN_BELOW
    if not (allowed == allowed[:, :1]).all():
        raise ValueError("4D attention_mask differs between heads; the trace holds one mask per layer")
    return allowed[0, 0].astype(np.uint8)


def selected_arrays(steps, probs):
    """`selected` I32[steps, W] padded with -1 and `selected_probs` F32[steps, W] padded with 0."""
    width = max([len(s) for s in steps] + [1])
    selected = np.full((len(steps), width), -1, np.int32)
    selected_probs = np.zeros((len(steps), width), np.float32)
    for i, (members, p) in enumerate(zip(steps, probs)):
        selected[i, :len(members)] = members
        selected_probs[i, :len(p)] = p
    return selected, selected_probs


# ---------------------------------------------------------- recorder --

class Row:
    """One cached row: what was computed when it entered the cache."""

    def __init__(self, token, position, allowed, logits, attention, mask_conflict=None):
        self.token, self.position = token, position
        self.allowed = allowed      # [mask_layers, keys] 0/1 (mask_layers 1 unless hooked)
        self.logits = logits        # [vocab], or None when the call computed none for this row
        self.attention = attention  # [L, H, keys] or None
        self.mask_conflict = mask_conflict  # (layer, key) where the passed mask and the attention disagree


def mask_conflicts(allowed, attention):
    """[k] (layer, key) or None per row: the first key the passed mask `allowed`
    [k, keys] allows with probability exactly 0 in every head of a layer, or
    hides with a probability > 0, in `attention` [L, H, k, keys]."""
    allowed = allowed.astype(bool)
    zero = (attention == 0).all(axis=1)          # [L, k, keys]
    seen = (attention > 0).any(axis=1)           # [L, k, keys]
    bad = (allowed[None] & zero) | (~allowed[None] & seen)
    out = []
    for i in range(allowed.shape[0]):
        key, layer = np.nonzero(bad[:, i, :].T)  # the lowest key first
        out.append((int(layer[0]), int(key[0])) if len(key) else None)
    return out


def call_inputs(signature, args, kwargs):
    """The named inputs of a forward call, positional or keyword, bound to
    forward's signature (entries of a **kwargs parameter included)."""
    bound = signature.bind(*args, **kwargs)
    inputs = {}
    for name, value in bound.arguments.items():
        kind = signature.parameters[name].kind
        if kind == inspect.Parameter.VAR_KEYWORD:
            inputs.update(value)
        elif kind != inspect.Parameter.VAR_POSITIONAL:
            inputs[name] = value
    return inputs


def numpy_of(x):
    return None if x is None else x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


class Recorder:
    """Records the forward calls of a PyTorch model with the Hugging Face
    signature (input_ids, attention_mask, position_ids, past_key_values,
    output_attentions, cache_position, num_logits_to_keep). Use as a context
    manager (it replaces model.forward while active, keeping its signature) or
    call rec(**kwargs) instead of model(**kwargs).
    See the module docstring for which mask is recorded."""

    def __init__(self, model, hook_attention=False, attention_modules=None, engine=""):
        self.model, self.hook_attention, self.rows = model, hook_attention, []
        self.steps, self.step_probs, self.pruned = [], [], {}
        self.metadata = {"engine": engine} if engine else {}
        self.modules = attention_modules
        if hook_attention and self.modules is None:
            self.modules = [m for m in model.modules() if type(m).__name__.endswith("Attention")]
        if hook_attention and not self.modules:
            raise ValueError("hook_attention: no module whose class name ends in 'Attention'; pass attention_modules")
        self.hooked, self.handles, self.n_prompt_rows = [], [], None

    def __enter__(self):
        self.own_forward = self.model.__dict__.get("forward")  # an instance attribute, if the engine set one
        self.original = self.model.forward
        self.model.forward = self.wrapped_forward(self.original)
        if self.hook_attention:
            self.handles = [m.register_forward_hook(self.attention_hook) for m in self.modules]
        return self

    def __exit__(self, *exc):
        if self.own_forward is None:
            del self.model.forward  # back to the class's forward
        else:
            self.model.forward = self.own_forward
        for h in self.handles:
            h.remove()
        self.handles = []

    def wrapped_forward(self, original):
        """`original` recorded, with its name, docstring and signature."""
        @functools.wraps(original)
        def forward(*args, **kwargs):
            return self.record(original, args, kwargs)
        forward.__signature__ = inspect.signature(original)
        return forward

    def __call__(self, *args, **kwargs):
        return self.record(getattr(self, "original", self.model.forward), args, kwargs)

    def attention_hook(self, module, inputs, output):
        weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
        if weights is None:
            raise ValueError(f"hook_attention: {type(module).__name__} returned no attention probabilities: pass "
                             "output_attentions=True to every model call (or to generate()), with eager or sdpa "
                             "attention (flash attention returns none)")
        self.hooked.append(weights.detach().float().cpu().numpy())

    @staticmethod
    def cache_length(past):
        if past is None:
            return 0
        if hasattr(past, "get_seq_length"):
            return int(past.get_seq_length())
        return int(past[0][0].shape[-2]) if len(past) else 0

    def record(self, forward, args, kwargs):
        inputs = call_inputs(inspect.signature(forward), args, kwargs)
        n_past = self.cache_length(inputs.get("past_key_values"))  # before the call: a cache object grows in it
        if n_past > len(self.rows):
            raise ValueError(f"the cache holds {n_past} rows but only {len(self.rows)} were recorded: "
                             "start recording before the first forward call")
        del self.rows[n_past:]
        self.hooked = []
        output = forward(*args, **kwargs)
        self.append_rows(inputs, n_past, output)
        if self.n_prompt_rows is None:
            self.n_prompt_rows = len(self.rows)
        return output

    def append_rows(self, inputs, n_past, output):
        if inputs.get("input_ids") is None:
            raise ValueError("the recorder needs input_ids: a call with inputs_embeds alone names no tokens")
        ids = numpy_of(inputs["input_ids"])
        if ids.ndim != 2 or ids.shape[0] != 1:
            raise ValueError(f"the recorder takes input_ids of shape (1, k), got {tuple(ids.shape)}")
        k, keys = ids.shape[1], n_past + ids.shape[1]
        cache_position = numpy_of(inputs.get("cache_position"))
        positions = self.call_positions(inputs, cache_position, n_past, k)
        logits = output.logits if hasattr(output, "logits") else output[0]
        logits = logits.detach().float().cpu().numpy()[0]  # the last len(logits) rows (num_logits_to_keep)
        attention = self.layer_attention(output)
        allowed = self.call_mask(inputs.get("attention_mask"), n_past, k, cache_position)
        conflicts = [None] * k
        if attention is not None and not self.hook_attention:
            conflicts = mask_conflicts(allowed[0], attention[:, :, :, :keys])
        for i in range(k):
            att = None if attention is None else attention[:, :, i, :keys]
            row_logits = logits[i - (k - len(logits))] if i >= k - len(logits) else None
            self.rows.append(Row(int(ids[0, i]), int(positions[i]), allowed[:, i, :keys], row_logits, att,
                                 conflicts[i]))

    @staticmethod
    def call_positions(inputs, cache_position, n_past, k):
        """position_ids when given, else cache_position, else n_past.. (transformers' rule)."""
        position_ids = numpy_of(inputs.get("position_ids"))
        if position_ids is not None:
            return position_ids.reshape(-1)
        return np.arange(n_past, n_past + k) if cache_position is None else cache_position.reshape(-1)

    def layer_attention(self, output):
        """[L, H, k, keys] from the hooks, else from output.attentions when returned."""
        if self.hook_attention:
            return np.stack([w[0] for w in self.hooked])
        atts = getattr(output, "attentions", None)
        if atts is None:
            return None
        return np.stack([a.detach().float().cpu().numpy()[0] for a in atts])

    def call_mask(self, mask, n_past, k, cache_position):
        """[mask_layers, k, keys]: the mask as passed, or as applied per layer (hooked)."""
        if self.hook_attention:
            return np.stack([(w[0] > 0).any(axis=0) for w in self.hooked]).astype(np.uint8)
        return allowed_from_mask(numpy_of(mask), n_past, k, cache_position)[None]

    def select(self, tokens, probs=None):
        """The engine's parallel set of the next step, most probable first."""
        tokens = [int(t) for t in tokens]
        self.steps.append(tokens)
        self.step_probs.append([float(p) for p in probs] if probs is not None else [0.0] * len(tokens))

    def prune(self, row, step):
        """Row `row` was pruned at step `step` (hidden from later steps)."""
        self.pruned[int(row)] = int(step)

    def set_metadata(self, **entries):
        self.metadata.update({k: str(v) for k, v in entries.items()})

    def check_masks(self):
        """Raises when a row's passed mask disagrees with its attention (module docstring)."""
        for i, r in enumerate(self.rows):
            if r.mask_conflict is None:
                continue
            layer, key = r.mask_conflict
            passed, seen = ("allows", "0 in every head") if r.allowed[0, key] else ("hides", "> 0")
            raise ValueError(f"row {i} key {key}: the attention_mask passed {passed} it but layer {layer} gives it "
                             f"probability {seen}: the model applied another mask (patched attention?); record "
                             "with Recorder(model, hook_attention=True), which reads the mask as applied")

    def arrays(self):
        """The trace's tensors: tokens, positions, sets, allowed, logits (or
        kept_rows and kept_logits), attention (when every row has it), pruned,
        selected, selected_probs."""
        n = len(self.rows)
        if n == 0:
            raise ValueError("nothing recorded: no forward call ran under the recorder")
        self.check_masks()
        layers = max(r.allowed.shape[0] for r in self.rows)
        allowed = np.zeros((layers, n, n), np.uint8)
        for i, r in enumerate(self.rows):
            allowed[:, i, :r.allowed.shape[1]] = r.allowed
        if (allowed == allowed[:1]).all():
            allowed = allowed[0]
        positions = np.asarray([r.position for r in self.rows], np.int32)
        out = {"tokens": np.asarray([r.token for r in self.rows], np.int32), "positions": positions,
               "sets": positions.copy(), "allowed": allowed}
        out.update(self.logit_arrays())
        if all(r.attention is not None for r in self.rows):
            L, H = self.rows[0].attention.shape[:2]
            attention = np.zeros((L, H, n, n), np.float32)
            for i, r in enumerate(self.rows):
                attention[:, :, i, :r.attention.shape[2]] = r.attention
            out["attention"] = attention
        if self.pruned:
            out["pruned"] = np.asarray([self.pruned.get(i, -1) for i in range(n)], np.int32)
        if self.steps:
            out["selected"], out["selected_probs"] = selected_arrays(self.steps, self.step_probs)
        return out

    def logit_arrays(self):
        """`logits` when every row has them, else `kept_rows` and `kept_logits` (module docstring)."""
        kept = [i for i, r in enumerate(self.rows) if r.logits is not None]
        if not kept:
            return {}
        logits = np.stack([self.rows[i].logits for i in kept]).astype(np.float32)
        if len(kept) == len(self.rows):
            return {"logits": logits}
        return {"kept_rows": np.asarray(kept, np.int32), "kept_logits": logits}

    def write(self, path):
        metadata = dict(self.metadata)
        metadata.setdefault("n_prompt", str(self.n_prompt_rows))
        write_trace(path, self.arrays(), metadata)
