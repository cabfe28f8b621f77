#!/usr/bin/python3
"""Tests of tools/tempo_capture.py with Debian's python3-torch (make test runs them):

    test_capture.py TEMPO_BIN WEIGHTS_DIR OUT_DIR

The PyTorch Llama of tests/torch_llama.py is checked against `tempo forward`
on both checkpoint layouts; the recorder then captures a correct TEMPO loop
(isolated and visible) and three broken ones (tests/tempo_loops.py). `tempo
verify` must pass all of them, and `tempo audit` must find nothing in the
correct ones and name each break exactly: kind, row, key or step."""
import inspect
import json
import os
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, HERE)
import tempo_capture as tc  # noqa: E402
from run_tests import run_tests  # noqa: E402
import tempo_loops  # noqa: E402
import torch_llama  # noqa: E402
from torch_llama import Llama  # noqa: E402

TEMPO, WEIGHTS, OUT = sys.argv[1:4]
OUT = os.path.abspath(OUT)  # the docstring's recipe runs in it
HF, BIN = os.path.join(WEIGHTS, "stories260K-hf"), os.path.join(WEIGHTS, "stories260K.bin")
PROMPT = [1, 403, 407, 261, 378, 383, 286, 261, 376, 298, 315, 421]  # "Once upon a time there was a little girl", tok512
STEPS, THRESHOLD = 20, 0.1


def tempo(*args):
    return subprocess.run([TEMPO, *args], capture_output=True, text=True)


def out_path(name):
    return os.path.join(OUT, name)


def test_model_matches_tempo_forward():
    """torch_llama on both layouts against tempo forward: a parallel set at position 5, isolated."""
    tokens, positions = [1, 403, 407, 261, 378, 383, 298, 286], [0, 1, 2, 3, 4, 5, 5, 6]
    for path in (HF, BIN):
        r = tempo("forward", "-m", path, "--tokens", ",".join(map(str, tokens)), "--positions",
                  ",".join(map(str, positions)), "--mask", "isolated", "--out", out_path("forward.st"))
        assert r.returncode == 0, r.stderr
        t, _ = tc.read_trace(out_path("forward.st"))
        mask = torch.tensor(tc.tempo_mask("isolated", positions).astype(bool))[None, None]
        assert (t["allowed"] == mask[0, 0].numpy()).all(), "tempo_mask differs from tempo's isolated mask"
        out = Llama.load(path)(input_ids=torch.tensor([tokens]), attention_mask=mask,
                               position_ids=torch.tensor([positions]), output_attentions=True)
        dlogit = np.abs(out.logits[0].numpy() - t["logits"]).max()
        datt = np.abs(torch.stack(out.attentions)[:, 0].numpy() - t["attention"]).max()
        assert dlogit < 1e-4 and datt < 1e-5, f"{path}: max |dlogit| {dlogit}, |dattention| {datt}"


def transformers_rope(x, positions, inv_freq, rotate_half):
    """torch_llama.rope as transformers' LlamaRotaryEmbedding forms the angles: inv_freq in f32
    (1 / base ** (arange(0, hd, 2).float() / hd)), freqs = inv_freq @ position in f32, cos/sin in f32."""
    hd = 2 * inv_freq.shape[0]
    base = float(inv_freq[1] ** (-hd / 2.0))
    inv32 = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    freqs = (inv32[None, :, None].float() @ positions[None, None, :].float()).transpose(1, 2)[0]
    cos, sin = freqs.cos(), freqs.sin()
    if rotate_half:
        a, b = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
        return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)


def test_numerics_torch_follows_transformers_rope_beyond_8k():
    """tempo forward --numerics torch equals the Llama with transformers' f32 RoPE angles at
    positions beyond 8,000; exact (angles in double) does not, and equals torch_llama's own.
    (The two engines' f32 sums differ by about 5e-6 here: the bound is 2e-5; the RoPE effect is 1e-3.)"""
    path = out_path("long-hf")
    r = tempo("synth", "--format", "hf", "--out", path, "--seed", "5", "--layers", "2", "--heads", "4",
              "--kv-heads", "2", "--seq-len", "40000")
    assert r.returncode == 0, r.stderr
    cfg_path = os.path.join(path, "config.json")  # plain RoPE: torch_llama has no rope_scaling
    cfg = json.load(open(cfg_path))
    cfg.pop("rope_scaling", None)
    json.dump(cfg, open(cfg_path, "w"))
    tokens, positions = [1, 40, 41, 42, 43, 44, 45], [0, 8191, 8192, 12001, 19999, 30001, 39999]
    model = Llama.load(path)
    assert abs(float(model.inv_freq[1] ** (-model.hd / 2.0)) - 10000.0) < 1e-6, "the helper's base is not theta"
    logits = {}
    for numerics in ("exact", "torch"):
        r = subprocess.run([TEMPO, "forward", "-m", path, "--tokens", ",".join(map(str, tokens)), "--positions",
                            ",".join(map(str, positions)), "--numerics", numerics, "--out", out_path(f"long-{numerics}.st")],
                           capture_output=True)  # the synthetic vocabulary's pieces are bytes, not text
        assert r.returncode == 0, r.stderr
        t, meta = tc.read_trace(out_path(f"long-{numerics}.st"))
        assert meta["numerics"] == numerics, meta
        logits[numerics] = t["logits"]
    mask = torch.tensor(t["allowed"].astype(bool))[None, None]
    args = dict(input_ids=torch.tensor([tokens]), attention_mask=mask, position_ids=torch.tensor([positions]))
    exact_angles = model(**args).logits[0].detach().numpy()
    original = torch_llama.rope
    torch_llama.rope = transformers_rope
    try:
        f32_angles = model(**args).logits[0].detach().numpy()
    finally:
        torch_llama.rope = original
    mine, theirs = np.abs(logits["torch"] - f32_angles).max(), np.abs(logits["exact"] - f32_angles).max()
    assert mine < 2e-5, f"--numerics torch differs from transformers' RoPE by {mine}"
    assert theirs > 10 * mine and theirs > 1e-5, f"exact is as close to transformers' RoPE ({theirs}) as torch ({mine})"
    assert np.abs(logits["exact"] - exact_angles).max() < 2e-5, "exact differs from torch_llama's double angles"
    print(f"      RoPE beyond 8k: |torch - transformers| {mine:.2g}, |exact - transformers| {theirs:.2g}")


def test_trace_round_trip_and_large_metadata():
    """40 tensors and 40 metadata entries of 2,000 characters, read back as written."""
    rng = np.random.default_rng(3)
    tensors = {f"extra_{i}": rng.standard_normal((i % 5 + 1, 3)).astype(np.float32) for i in range(37)}
    tensors.update({"tokens": np.arange(4, dtype=np.int32), "positions": np.arange(4, dtype=np.int32),
                    "allowed": tc.tempo_mask("causal", range(4))})
    meta = {f"key{i}": chr(ord("a") + i % 26) * 2000 for i in range(40)}
    tc.write_trace(out_path("large.st"), tensors, meta)
    back, back_meta = tc.read_trace(out_path("large.st"))
    assert back_meta == meta and set(back) == set(tensors)
    assert all((back[k] == v).all() and back[k].dtype == v.dtype for k, v in tensors.items())


def test_masks_from_every_attention_mask_form():
    """None, 2D ones, 4D boolean and 4D additive give the same causal rows; 2D padding hides a key."""
    causal = tc.tempo_mask("causal", range(5))[2:]
    bool4 = causal.astype(bool)[None, None]
    forms = [None, np.ones((1, 5), np.int64), bool4, tc.additive_mask(bool4), np.where(bool4, 0.0, -1e9)]
    for form in forms:
        assert (tc.allowed_from_mask(form, 2, 3) == causal).all(), f"form {type(form)}"
    padded = tc.allowed_from_mask(np.array([[1, 0, 1, 1, 1]]), 2, 3)
    assert (padded[:, 1] == 0).all() and padded[2, 4] == 1


def test_position_maps():
    tokens, positions, sets = tc.tempo_rows([1, 5], [[7, 8], [9]])
    assert list(tokens) == [1, 5, 7, 8, 9] and list(positions) == [0, 1, 2, 2, 3] and list(sets) == list(positions)
    pruned = tc.tempo_mask("isolated", sets, pruned=[-1, -1, 0, -1, -1], row_steps=[-1, -1, 0, 0, 1])
    assert pruned[4, 2] == 0 and pruned[4, 3] == 1 and pruned[3, 2] == 0 and pruned[2, 2] == 1


def record(variant, mode="isolated", name="", hooked=None, **loop):
    """Runs one loop under the recorder and writes its trace; returns (path, what the loop did, recorder)."""
    model = Llama.load(HF)
    if hooked is None:
        hooked = variant == "mask-over-selected"  # patched attention: record the mask as applied
    with tc.Recorder(model, hook_attention=hooked, engine=f"tests/tempo_loops.py {variant}") as rec:
        did = tempo_loops.run(model, PROMPT, STEPS, variant, mode, THRESHOLD, 8, on_select=rec.select, **loop)
    rec.set_metadata(mode=mode, threshold=THRESHOLD, max_width=8, n_prompt=len(PROMPT), next_from="last")
    path = out_path(f"{variant}-{mode}{name}.st")
    rec.write(path)
    return path, did


def expected_findings(variant, did):
    """What the loop did wrong, from its own bookkeeping: (kind, row, key, step, token)."""
    P, steps, found = len(did["prompt"]), did["steps"], []
    if variant == "doubled":
        found.append(("unexpected-row", P, None, 0, did["prompt"][-1]))
        first = P + 1
        for s, (members, _) in enumerate(steps):
            found.append(("position-mismatch", first, None, s, None))
            first += len(members)
    if variant in ("last-member-only", "mask-over-selected"):
        found += [("selected-not-fed", None, None, s, t) for s, (members, _) in enumerate(steps) for t in members[:-1]]
    for row, key in did["hidden"]:
        found.append(("hidden-non-sibling", row, key, row - P, None))
    first_rows = {}  # each step's first fed row; the row before it predicts the step
    for i, (_, _, s) in enumerate(did["fed"]):
        first_rows.setdefault(s, P + i)
    found += [("selection-differs", first_rows[s] - 1, None, s, None)
              for s, ((members, _), right) in enumerate(zip(steps, did["right"])) if members != right]
    return sorted(found, key=repr)


def audit(path, *flags):
    json_path = path + ".audit.json"
    r = tempo("audit", "-m", HF, path, "--json", json_path, *flags)
    assert r.returncode in (0, 1), f"tempo audit exit {r.returncode}: {r.stderr}"
    report = json.load(open(json_path))
    got = [(f["kind"], f["row"], f["key"], f["step"], f["token"]) for f in report["findings"]]
    return r, report, sorted(got, key=repr)


def check_loop(variant, mode="isolated", name="", **loop):
    path, did = record(variant, mode, name, **loop)
    v = tempo("verify", "-m", HF, path)
    assert v.returncode == 0 and "PASS" in v.stdout, f"verify {variant}: {v.stdout[-400:]} {v.stderr}"
    r, report, got = audit(path)
    want = expected_findings(variant, did)
    assert got == want, f"audit {variant} {mode}:\n got  {got[:12]}\n want {want[:12]}"
    assert r.returncode == (1 if want else 0), f"audit exit {r.returncode} with {len(want)} findings"
    if variant == "doubled":
        assert all("offset +1" in f["detail"] for f in report["findings"] if f["kind"] == "position-mismatch")
    return want, path, report


def test_correct_loop_isolated():
    check_loop("correct", "isolated")


def test_correct_loop_visible():
    check_loop("correct", "visible")


def test_token_fed_twice():
    assert check_loop("doubled")[0]


def test_last_member_only():
    assert check_loop("last-member-only")[0]


def test_isolation_mask_over_selected_tokens():
    want = check_loop("mask-over-selected")[0]
    assert any(k == "hidden-non-sibling" for k, *_ in want), "the wrong mask never hid a cell"


# ------------------------------------------- transformers' conventions --

def test_positions_from_cache_position_alone():
    """A loop that passes cache_position alone (transformers' positions then) records those positions:
    verify passes and audit finds nothing."""
    want, path, _ = check_loop("correct", "isolated", "-cache-position", positions_as="cache_position")
    t, _ = tc.read_trace(path)
    _, positions, _ = tc.tempo_rows(PROMPT, [row[row >= 0] for row in t["selected"]])
    assert not want and list(t["positions"]) == list(positions)


def test_causal_order_from_cache_position():
    """With no mask (or a 2D one), transformers hides keys after cache_position[i] from query i:
    a set fed at one cache_position records that mask, and the trace verifies."""
    model, P = Llama.load(HF), len(PROMPT)
    with tc.Recorder(model) as rec:
        out = model(input_ids=torch.tensor([PROMPT]), output_attentions=True)
        model(input_ids=torch.tensor([[298, 286, 261]]), past_key_values=out.past_key_values,
              cache_position=torch.full((3,), P), output_attentions=True)
    rec.write(out_path("cache-position-causal.st"))
    t, _ = tc.read_trace(out_path("cache-position-causal.st"))
    assert list(t["positions"][P:]) == [P, P, P]
    assert (t["allowed"][P:, :P + 1] == 1).all() and (t["allowed"][P:, P + 1:] == 0).all()
    v = tempo("verify", "-m", HF, out_path("cache-position-causal.st"))
    assert v.returncode == 0, v.stdout[-400:] + v.stderr


def test_logits_of_the_last_row_only():
    """num_logits_to_keep=1: no crash; the trace holds no `logits` tensor (no row's logits are
    invented) and keeps the computed rows in kept_rows/kept_logits, equal to a full run's rows.
    verify compares the logits on those rows; the audit checks every step's selection from them
    (each step is predicted by a call's last row), and names each wrong set of a loop that
    chooses from stale logits."""
    _, full_path, _ = check_loop("correct")
    want, path, report = check_loop("correct", "isolated", "-keep1", logits_to_keep=1)
    t, _ = tc.read_trace(path)
    full, _ = tc.read_trace(full_path)
    assert "logits" not in t and not want
    sets = [int((row >= 0).sum()) for row in t["selected"]]
    calls_last = list(len(PROMPT) - 1 + np.cumsum([0] + sets))  # the prompt call, then one call a step
    assert list(t["kept_rows"]) == calls_last, f"kept rows {list(t['kept_rows'])}, calls end at {calls_last}"
    d = np.abs(t["kept_logits"] - full["logits"][t["kept_rows"]]).max()
    assert d < 1e-5, f"kept logits differ from the full run's by {d}"
    v = tempo("verify", "-m", HF, path).stdout
    assert f"logits compared on {len(calls_last)} of {len(t['tokens'])} rows (kept_rows)" in v, v[-600:]
    assert report["checks"]["selection"] == f"0 findings over {STEPS} steps", report["checks"]
    assert f"logits compared on {len(calls_last)} of" in report["checks"]["arithmetic"], report["checks"]
    want, path, report = check_loop("stale-logits", "isolated", "-keep1", logits_to_keep=1)
    assert len(want) >= 3 and {k for k, *_ in want} == {"selection-differs"}, want
    assert report["checks"]["selection"] == f"{len(want)} findings over {STEPS} steps", report["checks"]
    assert "logits" not in tc.read_trace(path)[0]


def test_wrapped_forward_keeps_the_signature():
    """generate() reads forward's signature: under the recorder it must see the model's own, so it
    still builds the attention mask, position_ids and asks for the last row's logits only."""
    model = Llama.load(HF)
    prompt = torch.tensor([PROMPT])
    plain = torch_llama.generate(model, prompt, 6)
    original = inspect.signature(model.forward)
    with tc.Recorder(model) as rec:
        assert inspect.signature(model.forward) == original, inspect.signature(model.forward)
        recorded = torch_llama.generate(model, prompt, 6)
    assert inspect.signature(model.forward) == original and "forward" not in model.__dict__
    assert torch.equal(plain, recorded)
    t = rec.arrays()
    assert "logits" not in t, "generate() did not pass num_logits_to_keep=1 through the wrapper"
    assert list(t["kept_rows"]) == list(range(len(PROMPT) - 1, len(PROMPT) + 5))


def test_default_mode_checks_the_mask_against_the_attention():
    """Patched attention recorded in the default mode: the mask passed is not the mask applied.
    write() refuses, names the first cell the patch hid and says to record with hook_attention=True."""
    model = Llama.load(HF)
    with tc.Recorder(model) as rec:
        did = tempo_loops.run(model, PROMPT, STEPS, "mask-over-selected", on_select=rec.select)
    row, key = did["hidden"][0]
    try:
        rec.write(out_path("mask-over-selected-unhooked.st"))
    except ValueError as e:
        assert f"row {row} key {key}:" in str(e) and "hook_attention=True" in str(e), str(e)
        assert not os.path.exists(out_path("mask-over-selected-unhooked.st"))
        return
    raise AssertionError("a trace whose mask differs from the attention was written")


def test_hook_error_says_to_pass_output_attentions():
    model = Llama.load(HF)
    with tc.Recorder(model, hook_attention=True) as rec:
        try:
            model(input_ids=torch.tensor([PROMPT]))
        except ValueError as e:
            assert "output_attentions=True" in str(e), str(e)
            return
    raise AssertionError(f"no error; rows {len(rec.rows)}")


def docstring_block(title):
    """The code block of tempo_capture's docstring after the line `title`."""
    doc = tc.__doc__
    assert title in doc, f"the module docstring has no section {title!r}"
    lines = doc.split(title, 1)[1].split("\n")[1:]
    block = []
    for line in lines:
        if line.strip() and not line.startswith("    "):
            break
        block.append(line[4:])
    return "\n".join(block)


def test_docstring_recipe_for_an_engine_loop_generate():
    """The docstring's recipe for an engine that runs its own loop (generate()), run as written:
    select() after the run, the last (never fed) token not selected, greedy as threshold 1, width 1.
    The trace verifies and audit finds nothing, and tempo's replay selects the same sets."""
    model = Llama.load(HF)
    space, here = {"model": model, "prompt_ids": torch.tensor([PROMPT]), "Recorder": tc.Recorder}, os.getcwd()
    os.chdir(OUT)
    try:
        exec(docstring_block("An engine that runs its own loop (generate()):"), space)
    finally:
        os.chdir(here)
    path = out_path("greedy.st")
    v = tempo("verify", "-m", HF, path)
    assert v.returncode == 0 and "attention" in v.stdout, v.stdout[-400:] + v.stderr
    r, report, got = audit(path)
    assert got == [] and r.returncode == 0, got[:8]
    assert report["first_divergent_step"] in (None, -1), report["first_divergent_step"]
    t, meta = tc.read_trace(path)
    assert len(t["selected"]) == len(t["tokens"]) - len(PROMPT) and meta["max_width"] == "1"
    last = int(space["out"][0, -1])  # selected too, as the docstring says not to: audit names it
    space["rec"].select([last])
    space["rec"].write(out_path("greedy-last-selected.st"))
    _, _, got = audit(out_path("greedy-last-selected.st"))
    assert got == [("selected-not-fed", None, None, len(t["selected"]), last)], got


def test_docstring_max_width_without_a_cap():
    """The docstring says what max_width to record for an engine with no cap; a correct loop with
    no cap, recorded so, audits clean and tempo's replay selects the same sets."""
    doc = " ".join(tc.__doc__.split())
    assert "no cap" in doc and "max_width=model.config.vocab_size" in doc, "the docstring does not say"
    model = Llama.load(HF)
    with tc.Recorder(model) as rec:
        tempo_loops.run(model, PROMPT, STEPS, "correct", "isolated", 0.02, model.vocab, on_select=rec.select)
    rec.set_metadata(mode="isolated", threshold=0.02, max_width=model.vocab, n_prompt=len(PROMPT), next_from="last")
    rec.write(out_path("no-cap.st"))
    r, report, got = audit(out_path("no-cap.st"))
    assert got == [] and report["first_divergent_step"] in (None, -1), (got[:8], report["first_divergent_step"])
    assert max(int((row >= 0).sum()) for row in tc.read_trace(out_path("no-cap.st"))[0]["selected"]) > 8


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    return run_tests(globals(), "capture", "CAPTURE_TESTS")

if __name__ == "__main__":
    sys.exit(main())
