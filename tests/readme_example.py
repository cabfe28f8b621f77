#!/usr/bin/python3
"""Runs the numpy trace example from README.md (the block after the line
'<!-- trace-example -->'): feeds it the inputs and logits of a reference
trace and writes the result, which the test then verifies with tempo."""
import json, struct, sys
import numpy as np

readme, reference, out = sys.argv[1:4]
text = open(readme).read()
block = text.split("<!-- trace-example -->", 1)[1].split("```python", 1)[1].split("```", 1)[0]
namespace = {}
exec(block, namespace)

raw = open(reference, "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n])
def tensor(name, dtype):
    a, b = header[name]["data_offsets"]
    return np.frombuffer(raw[8 + n + a:8 + n + b], dtype=dtype).reshape(header[name]["shape"])
namespace["write_trace"](out, tensor("tokens", "<i4"), tensor("positions", "<i4"), tensor("sets", "<i4"),
                         tensor("allowed", "u1"), tensor("logits", "<f4"))
