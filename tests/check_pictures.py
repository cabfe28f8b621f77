"""Checks tempo's SVG pictures against the trace they show, read here
independently (safetensors: an 8-byte header length, a JSON header, raw
little-endian data). Prints what it found; exits 1 naming the first mismatch.

  check_pictures.py heatmap SVG TRACE LAYER HEAD R0 R1   rows [R0, R1] of --svg (R1 -1: the last)
  check_pictures.py grid SVG TRACE ROW                   --svg-grid --row ROW
  check_pictures.py pair SVG TRACE LAYER HEAD R0 R1      --svg-pair
  check_pictures.py tree SVG RUN_JSON                    generate --svg-tree, --json
  check_pictures.py png PNG                              a PNG rsvg-convert wrote
"""
import json
import re
import struct
import sys
import xml.etree.ElementTree as ET

import numpy as np

NS = "{http://www.w3.org/2000/svg}"
DTYPES = {"F32": np.float32, "I32": np.int32, "U8": np.uint8}


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def read_trace(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        lo, hi = t["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + lo:8 + n + hi], DTYPES[t["dtype"]]).reshape(t["shape"])
    if "allowed_bits" in out:  # tempo's packed mask: key k of a row is bit k % 8 of byte k // 8
        bits = out.pop("allowed_bits")
        out["allowed"] = np.unpackbits(bits, axis=-1, count=bits.shape[-2], bitorder="little")
    if "attention" in out:
        out["attention"] = expand_attention(out, header.get("__metadata__", {}))
    return out


def expand_attention(tr, meta):
    """A partial capture (attention_layers, _heads, _rows: the kept indices)
    as the dense [layers, heads, n, n], NaN where nothing was kept."""
    att, n = tr["attention"], len(tr["tokens"])
    layers = tr.get("attention_layers", np.arange(att.shape[0]))
    heads = tr.get("attention_heads", np.arange(att.shape[1]))
    rows = tr.get("attention_rows", np.arange(att.shape[2]))
    dense = np.full((int(meta.get("n_layers", layers[-1] + 1)), int(meta.get("n_heads", heads[-1] + 1)), n, n), np.nan, np.float32)
    dense[np.ix_(layers, heads, rows, np.arange(n))] = att
    return dense


def classes(e):
    return (e.get("class") or "").split()


def elements(svg, tag, *wanted):
    root = ET.parse(svg).getroot()
    return [e for e in root.iter(NS + tag) if all(w in classes(e) for w in wanted)]


def cell_coords(cell):
    """(query, key, value) from a cell's tooltip."""
    m = re.match(r"(?:query (\d+) key (\d+)|layer \d+ head \d+ key (\d+)): (\S+)", cell.find(NS + "title").text)
    if not m:
        fail("cell tooltip %r" % cell.find(NS + "title").text)
    q = int(m.group(1)) if m.group(1) else -1
    k = int(m.group(2) or m.group(3))
    return q, k, float(m.group(4))


def mask(trace, layer):
    a = trace["allowed"]
    return a[layer] if a.ndim == 3 else a


def check_cells(cells, attention, allowed, r0, r1, what):
    """One cell per (query, key) of rows [r0, r1] x keys [0, r1]; masked exactly where allowed is 0; values match."""
    expect = (r1 - r0 + 1) * (r1 + 1)
    if len(cells) != expect:
        fail("%s: %d cells, expected %d" % (what, len(cells), expect))
    masked = seen = 0
    for c in cells:
        q, k, p = cell_coords(c)
        is_masked = "masked" in classes(c)
        if is_masked != (allowed[q, k] == 0):
            fail("%s: cell q %d k %d masked=%s but allowed=%d" % (what, q, k, is_masked, allowed[q, k]))
        if not is_masked and abs(p - attention[q, k]) > 1e-4 * max(1.0, abs(attention[q, k])):
            fail("%s: cell q %d k %d shows %g, trace %g" % (what, q, k, p, attention[q, k]))
        masked += is_masked
        seen += 1
    zeros = int((allowed[r0:r1 + 1, :r1 + 1] == 0).sum())
    if masked != zeros:
        fail("%s: %d masked cells, the mask has %d zeros there" % (what, masked, zeros))
    return masked


def check_boxes(svg, sets, r0, what):
    """Set outlines stay out of the masked upper triangle: each set's block is
    its own square on the diagonal; the dashed bands lie on or below it.
    Pictures with several panels are measured from each panel's first cell."""
    cells = elements(svg, "rect", "cell")
    size = float(cells[0].get("width"))
    lefts = sorted({float(c.get("x")) for c in cells if cell_coords(c)[1] == 0})
    y0 = min(float(c.get("y")) for c in cells)
    boxes = elements(svg, "rect", "set")
    for b in boxes:
        x, y = float(b.get("x")), float(b.get("y"))
        x0 = max(l for l in lefts if l <= x + 1e-6)
        first, top = round((x - x0) / size), round((y - y0) / size) + r0
        last, bottom = first + round(float(b.get("width")) / size) - 1, top + round(float(b.get("height")) / size) - 1
        if "block" in classes(b):
            members = [i for i in range(len(sets)) if sets[i] == sets[first]]
            if (first, last, bottom) != (members[0], members[-1], members[-1]) or top < members[0]:
                fail("%s: a set block covers keys %d-%d rows %d-%d, the set is rows %s" % (what, first, last, top, bottom, members))
        elif last > top:
            fail("%s: a set outline reaches above the diagonal (key %d > query %d)" % (what, last, top))
    return len(boxes)


def heatmap(svg, trace_path, layer, head, r0, r1):
    tr = read_trace(trace_path)
    r1 = r1 if r1 >= 0 else len(tr["tokens"]) - 1
    cells = elements(svg, "rect", "cell")
    masked = check_cells(cells, tr["attention"][layer, head], mask(tr, layer), r0, r1, "heatmap")
    siblings = len([c for c in cells if "sibling" in classes(c)])
    keys, queries = elements(svg, "text", "label", "key"), elements(svg, "text", "label", "query")
    if (len(keys), len(queries)) != (r1 + 1, r1 - r0 + 1):
        fail("heatmap: %d key and %d query labels, expected %d and %d" % (len(keys), len(queries), r1 + 1, r1 - r0 + 1))
    boxes = check_boxes(svg, tr["sets"], r0, "heatmap")
    title = ET.parse(svg).getroot().find(NS + "title").text
    for word in ("layer %d" % layer, "head %d" % head, "mode", "stories260K"):
        if word not in title:
            fail("heatmap title %r lacks %r" % (title, word))
    print("heatmap: %d cells, %d masked (%d hidden siblings), %d labels, %d set outlines; title %r"
          % (len(cells), masked, siblings, len(keys) + len(queries), boxes, title))


def grid(svg, trace_path, row):
    tr = read_trace(trace_path)
    layers, heads = tr["attention"].shape[:2]
    cells = elements(svg, "rect", "cell")
    if len(cells) != layers * heads * (row + 1):
        fail("grid: %d cells, expected %d" % (len(cells), layers * heads * (row + 1)))
    masked = len([c for c in cells if "masked" in classes(c)])
    zeros = sum(int((mask(tr, l)[row, :row + 1] == 0).sum()) for l in range(layers)) * heads
    if masked != zeros:
        fail("grid: %d masked cells, the mask has %d zeros in row %d" % (masked, zeros, row))
    keys = elements(svg, "text", "label", "key")
    n_layer, n_head = len(elements(svg, "text", "label", "layer")), len(elements(svg, "text", "label", "head"))
    if (len(keys), n_layer, n_head) != (heads * (row + 1), layers, heads):
        fail("grid: %d key, %d layer, %d head labels" % (len(keys), n_layer, n_head))
    scale = len(elements(svg, "rect", "scale"))
    if scale < 2:
        fail("grid: no colour scale")
    print("grid: %d cells, %d masked, %d key labels, %d layer and %d head labels, scale of %d"
          % (len(cells), masked, len(keys), n_layer, n_head, scale))


def pair(svg, trace_path, layer, head, r0, r1):
    tr = read_trace(trace_path)
    r1 = r1 if r1 >= 0 else len(tr["tokens"]) - 1
    sets, n = tr["sets"], len(tr["sets"])
    q, k = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    causal = k <= q
    isolated = causal & ((sets[k] != sets[q]) | (k == q))
    cells = elements(svg, "rect", "cell")
    per = (r1 - r0 + 1) * (r1 + 1)
    if len(cells) != 3 * per:
        fail("pair: %d cells, expected 3 panels of %d" % (len(cells), per))
    panels = [cells[:per], cells[per:2 * per], cells[2 * per:]]
    counts = []
    for cs, allowed, name in zip(panels, (isolated, causal, causal), ("isolated", "visible", "difference")):
        for c in cs:
            qq, kk, _ = cell_coords(c)
            if ("masked" in classes(c)) != (not allowed[qq, kk]):
                fail("pair %s: cell q %d k %d masked=%s, mask says %s" % (name, qq, kk, "masked" in classes(c), allowed[qq, kk]))
        counts.append(sum("masked" in classes(c) for c in cs))
    check_boxes(svg, sets, r0, "pair")
    first_set = min([i for i in range(1, n) if sets[i] == sets[i - 1]], default=n)
    diffs = {}
    for c in panels[2]:
        qq, kk, p = cell_coords(c)
        diffs[qq] = max(diffs.get(qq, 0.0), abs(p))
    before = max([diffs[i] for i in diffs if i < first_set], default=0.0)
    after = max([diffs[i] for i in diffs if i >= first_set], default=0.0)
    if before != 0.0 or not after > 0.0:
        fail("pair: difference before the first set (row %d) %g, after %g" % (first_set, before, after))
    print("pair: 3 x %d cells; masked isolated %d, visible %d, difference %d; rows before %d identical, max |diff| after %.4f"
          % (per, counts[0], counts[1], counts[2], first_set, after))


def tree(svg, run_json):
    run = json.load(open(run_json))
    members = [t for s in run["steps"] for t in s["tokens"]]
    groups = elements(svg, "g", "member")
    pruned = [g for g in groups if "pruned" in classes(g)]
    strikes = elements(svg, "line", "strike")
    want_pruned = sum(t["pruned_at"] is not None for t in members)
    if len(groups) != len(members) or len(pruned) != want_pruned or len(strikes) != want_pruned:
        fail("tree: %d members (%d pruned, %d struck), the run has %d (%d pruned)"
             % (len(groups), len(pruned), len(strikes), len(members), want_pruned))
    frames = len(elements(svg, "rect", "set"))
    sets = sum(len(s["tokens"]) > 1 for s in run["steps"])
    if frames != sets:
        fail("tree: %d set frames, the run has %d parallel sets" % (frames, sets))
    for g, t in zip(groups, members):
        m = re.match(r"p ([0-9.]+)", g.find(NS + "title").text)
        if not m or abs(float(m.group(1)) - t["probability"]) > 1e-4:
            fail("tree: member shows %s, the run says p %g" % (g.find(NS + "title").text, t["probability"]))
    marked = check_drawn_from(svg, run, groups)
    print("tree: %d members in order with their probabilities, %d parallel sets framed, %d pruned and struck out, "
          "%d marked as drawn from (--next-from %s)" % (len(groups), frames, len(pruned), marked, run["settings"]["next_from"]))


def check_drawn_from(svg, run, groups):
    """The members the run drew each next set from, by its own record: with
    next_from last the step's last fed row (largest physical index), with mean
    every fed member; none for the last step. Exactly those are outlined
    (class from), and every black line leaves from one of them or the prompt."""
    steps, mean = run["steps"], run["settings"]["next_from"] == "mean"
    want = []
    for s, step in enumerate(steps):
        rows = [t["physical_index"] for t in step["tokens"]]
        fed = [r for r in rows if r is not None]
        last = max(fed, default=None)
        want += [s + 1 < len(steps) and r is not None and (mean or r == last) for r in rows]
    got = ["from" in classes(g) for g in groups]
    if got != want:
        i = next(i for i in range(len(want)) if got[i] != want[i])
        fail("tree: member %d is %smarked as drawn from, the run %s it (next_from %s)"
             % (i, "" if got[i] else "not ", "drew from" if want[i] else "did not draw from", run["settings"]["next_from"]))
    def right_middle(rect):
        return round(float(rect.get("x")) + float(rect.get("width"))), round(float(rect.get("y")) + float(rect.get("height")) / 2)
    starts = {right_middle(elements(svg, "g", "prompt")[0].find(NS + "rect"))}
    starts |= {right_middle(g.find(NS + "rect")) for g, w in zip(groups, want) if w}
    for line in elements(svg, "line", "path"):
        if "feed" in classes(line):
            continue
        if (round(float(line.get("x1"))), round(float(line.get("y1")))) not in starts:
            fail("tree: a black line leaves from (%s, %s), not from a member the next set was drawn from"
                 % (line.get("x1"), line.get("y1")))
    return sum(want)


def png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 1000:
        fail("%s is not a PNG of any size (%d bytes)" % (path, len(data)))
    width, height = struct.unpack(">II", data[16:24])
    if width < 100 or height < 100:
        fail("%s is %dx%d" % (path, width, height))
    print("png: %s %dx%d, %d bytes" % (path, width, height, len(data)))


if __name__ == "__main__":
    kind, args = sys.argv[1], sys.argv[2:]
    nums = [int(a) if re.fullmatch(r"-?\d+", a) else a for a in args]
    {"heatmap": heatmap, "grid": grid, "pair": pair, "tree": tree, "png": png}[kind](*nums)
