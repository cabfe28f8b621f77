"""GGUF files and ggml's block types, read in NumPy for the reference (oracle/reference.py).

Written from ggml's docs/gguf.md, the block layouts of ggml-common.h and the
reference dequantize_row_* of ggml-quants.c, not from tempo's kernels:
every product and difference is one float32 operation, in the reference's
order. Each type is vectorized over blocks by index arrays (which byte, which
shift for each value), where tempo's C walks the bytes in loops.
"""
import struct

import numpy as np

from iq_grid_types import IQ_TYPES  # the IQ grid types (their grids from gguf-py, loaded on first use)

# Written from ggml's docs/gguf.md and the block layouts of ggml-common.h.
# Dequantization follows ggml's reference dequantize_row_*: every product
# and difference is one float32 operation, in the reference's order.

GGUF_SCALARS = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1", 10: "<u8", 11: "<i8", 12: "<f8"}
GGML_TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 30: ("BF16", 1, 2), 8: ("Q8_0", 32, 34), 2: ("Q4_0", 32, 18),
              12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210),
              3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 20: ("IQ4_NL", 32, 18),
              10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 23: ("IQ4_XS", 256, 136),
              34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66), 41: ("Q1_0", 128, 18), 42: ("Q2_0", 64, 18)}
GGML_TYPES.update({t: (name, block, size) for t, (name, block, size, _) in IQ_TYPES.items()})
# kvalues_iq4nl: the 16 levels a 4-bit IQ4_NL / IQ4_XS index picks
IQ4_LEVELS = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], np.float32)


def read_gguf(path, dequant=True):
    """(metadata dict, {tensor name: float32 array [ne1][ne0]} or raw (type, ne, bytes))."""
    raw = open(path, "rb").read()
    pos = 0
    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, raw, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]
    def string():
        nonlocal pos
        n = take("Q")
        pos += n
        return raw[pos - n:pos].decode("utf-8", "surrogateescape")
    def value(t):
        nonlocal pos
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            if et in GGUF_SCALARS:
                a = np.frombuffer(raw, GGUF_SCALARS[et], n, pos)
                pos += a.nbytes
                return a
            return [value(et) for _ in range(n)]
        v = np.frombuffer(raw, GGUF_SCALARS[t], 1, pos)[0]
        pos += v.nbytes
        return v.item()
    assert raw[:4] == b"GGUF", f"{path} is not a GGUF file"
    pos = 4
    version = take("I")
    assert version in (2, 3), f"GGUF version {version}"
    n_tensors, n_kv = take("Q"), take("Q")
    kv = {}
    for _ in range(n_kv):
        k = string()
        kv[k] = value(take("I"))
    infos = []
    for _ in range(n_tensors):
        name = string()
        ne = [take("Q") for _ in range(take("I"))]
        infos.append((name, ne, take("I"), take("Q")))
    align = kv.get("general.alignment", 32)
    start = (pos + align - 1) // align * align
    tensors = {}
    for name, ne, t, off in infos:
        _, block, size = GGML_TYPES[t]
        n = int(np.prod(ne))
        data = raw[start + off:start + off + n // block * size]
        tensors[name] = dequantize(t, data, n).reshape(list(reversed(ne))) if dequant else (t, ne, data)
    return kv, tensors


def f16(b):
    return b.view("<f2").astype(np.float32).reshape(-1)


def dequantize(t, data, n):
    """n values of ggml type t as float32."""
    f32 = np.float32
    if t == 0:
        return np.frombuffer(data, "<f4", n).copy()
    if t == 1:
        return np.frombuffer(data, "<f2", n).astype(f32)
    if t == 30:
        return (np.frombuffer(data, "<u2", n).astype(np.uint32) << 16).view(f32)
    name, block, size = GGML_TYPES[t]
    b = np.frombuffer(data, np.uint8).reshape(-1, size)
    if t == 8:  # Q8_0: d (f16), 32 int8 quants; y = q * d
        d = f16(b[:, 0:2].copy())
        return (b[:, 2:].view(np.int8).astype(f32) * d[:, None]).reshape(-1)
    if t == 2:  # Q4_0: d, 16 bytes; low nibbles are values 0-15, high nibbles 16-31; y = (q - 8) * d
        d = f16(b[:, 0:2].copy())
        q = np.concatenate([b[:, 2:] & 15, b[:, 2:] >> 4], axis=1).astype(np.int32) - 8
        return (q.astype(f32) * d[:, None]).reshape(-1)
    if t in (12, 13):
        return dequant_q45k(b, t == 13).reshape(-1)
    if t == 14:
        return dequant_q6k(b).reshape(-1)
    return LOW_BIT[t](b).reshape(-1)


def k4_scales(s):
    """The 8 six-bit scales and mins of each Q4_K/Q5_K block from its 12 scale bytes."""
    s = s.astype(np.int32)
    sc = np.empty((s.shape[0], 8), np.int32)
    mn = np.empty_like(sc)
    sc[:, :4], mn[:, :4] = s[:, 0:4] & 63, s[:, 4:8] & 63
    sc[:, 4:] = (s[:, 8:12] & 15) | ((s[:, 0:4] >> 6) << 4)
    mn[:, 4:] = (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)
    return sc, mn


def dequant_q45k(b, five):
    """Q4_K (d, dmin, scales[12], qs[128]) and Q5_K (plus qh[32] before qs): y = (d*sc)*q - (dmin*m)."""
    f32 = np.float32
    d, dmin = f16(b[:, 0:2].copy()), f16(b[:, 2:4].copy())
    sc, mn = k4_scales(b[:, 4:16])
    qs = b[:, 48:176] if five else b[:, 16:144]
    out = np.empty((b.shape[0], 256), f32)
    for j in range(8):  # sub-block j: nibble j%2 of qs bytes 32*(j//2) ..
        chunk = qs[:, 32 * (j // 2):32 * (j // 2) + 32]
        q = (chunk & 15) if j % 2 == 0 else (chunk >> 4)
        q = q.astype(np.int32)
        if five:
            q = q + np.where(b[:, 16:48] & (1 << j), 16, 0)
        d1 = d * sc[:, j].astype(f32)
        m1 = dmin * mn[:, j].astype(f32)
        out[:, 32 * j:32 * j + 32] = (d1[:, None] * q.astype(f32)) - m1[:, None]
    return out


def dequant_q6k(b):
    """Q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], d; y = (d*sc)*(q - 32)."""
    f32 = np.float32
    ql, qh, sc = b[:, 0:128].astype(np.int32), b[:, 128:192].astype(np.int32), b[:, 192:208].view(np.int8).astype(f32)
    d = f16(b[:, 208:210].copy())
    out = np.empty((b.shape[0], 256), f32)
    for half in range(2):
        l, h = ql[:, 64 * half:64 * half + 64], qh[:, 32 * half:32 * half + 32]
        quarters = [(l[:, :32] & 15) | ((h & 3) << 4), (l[:, 32:] & 15) | (((h >> 2) & 3) << 4),
                    (l[:, :32] >> 4) | (((h >> 4) & 3) << 4), (l[:, 32:] >> 4) | (((h >> 6) & 3) << 4)]
        for k, q in enumerate(quarters):  # values 128*half + 32k + i, scale index 8*half + 2k + i//16
            for part in range(2):
                s = sc[:, 8 * half + 2 * k + part]
                v = (d * s)[:, None] * (q[:, 16 * part:16 * part + 16] - 32).astype(f32)
                out[:, 128 * half + 32 * k + 16 * part:128 * half + 32 * k + 16 * part + 16] = v
    return out


def nibbles(qs):
    """The 32 4-bit values of 16 bytes: low nibbles are values 0-15, high nibbles 16-31."""
    return np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.int32)


def fifth_bits(qh):
    """Bit j of the little-endian 32-bit qh, as 16 or 0, for value j (Q5_0, Q5_1)."""
    return np.unpackbits(qh, axis=1, bitorder="little").astype(np.int32) << 4


def dequant_q4_1(b):
    """Q4_1: d, m, qs[16]; y = q*d + m."""
    d, m = f16(b[:, 0:2].copy()), f16(b[:, 2:4].copy())
    return (nibbles(b[:, 4:20]).astype(np.float32) * d[:, None]) + m[:, None]


def dequant_q5_0(b):
    """Q5_0: d, qh[4], qs[16]; y = (q - 16) * d."""
    d = f16(b[:, 0:2].copy())
    q = nibbles(b[:, 6:22]) | fifth_bits(b[:, 2:6])
    return (q - 16).astype(np.float32) * d[:, None]


def dequant_q5_1(b):
    """Q5_1: d, m, qh[4], qs[16]; y = q*d + m."""
    d, m = f16(b[:, 0:2].copy()), f16(b[:, 2:4].copy())
    q = nibbles(b[:, 8:24]) | fifth_bits(b[:, 4:8])
    return (q.astype(np.float32) * d[:, None]) + m[:, None]


def dequant_iq4_nl(b):
    """IQ4_NL: d, qs[16] of indices into IQ4_LEVELS; y = d * level."""
    d = f16(b[:, 0:2].copy())
    return d[:, None] * IQ4_LEVELS[nibbles(b[:, 2:18])]


# Q2_K and Q3_K: value v = 128h + 32j + 16p + l takes bits 2j..2j+1 of qs byte
# 32h + 16p + l; its scale is that of sub-block v // 16.
_V = np.arange(256)
K2_BYTE = 32 * (_V // 128) + _V % 32
K2_SHIFT = 2 * ((_V % 128) // 32)
K2_SUB = _V // 16


def dequant_q2_k(b):
    """Q2_K: scales[16] (scale low nibble, min high), qs[64], d, dmin; y = (d*sc)*q - (dmin*m)."""
    f32 = np.float32
    sc, qs = b[:, 0:16], b[:, 16:80]
    d, dmin = f16(b[:, 80:82].copy()), f16(b[:, 82:84].copy())
    dl = d[:, None] * (sc & 15).astype(f32)
    ml = dmin[:, None] * (sc >> 4).astype(f32)
    q = (qs[:, K2_BYTE] >> K2_SHIFT) & 3
    return (dl[:, K2_SUB] * q.astype(f32)) - ml[:, K2_SUB]


def q3_k_scales(s):
    """The 16 six-bit scales of Q3_K's 12 bytes, unpacked as three little-endian words (ggml's aux)."""
    aux = s.copy().view("<u4")
    a0, a1, tmp = aux[:, 0], aux[:, 1], aux[:, 2]
    m1, m2 = np.uint32(0x03030303), np.uint32(0x0f0f0f0f)
    words = np.stack([(a0 & m2) | (((tmp >> 0) & m1) << 4), (a1 & m2) | (((tmp >> 2) & m1) << 4),
                      ((a0 >> 4) & m2) | (((tmp >> 4) & m1) << 4), ((a1 >> 4) & m2) | (((tmp >> 6) & m1) << 4)], axis=1)
    return words.astype("<u4").view(np.int8).astype(np.int32)


def dequant_q3_k(b):
    """Q3_K: hmask[32], qs[64], scales[12], d; q = 2 low bits - (4 unless the hmask bit 4h + j
    of byte 16p + l is set); y = (d*(sc - 32)) * q."""
    f32 = np.float32
    hmask, qs = b[:, 0:32], b[:, 32:96]
    d = f16(b[:, 108:110].copy())
    dl = d[:, None] * (q3_k_scales(b[:, 96:108]) - 32).astype(f32)
    high = (hmask[:, _V % 32] >> (4 * (_V // 128) + (_V % 128) // 32)) & 1
    q = ((qs[:, K2_BYTE] >> K2_SHIFT) & 3).astype(np.int32) - 4 * (1 - high.astype(np.int32))
    return dl[:, K2_SUB] * q.astype(f32)


def dequant_iq4_xs(b):
    """IQ4_XS: d, scales_h (u16), scales_l[4], qs[128]; sub-block i of 32 has the 6-bit scale
    nibble i%2 of scales_l[i//2] | bits 2i..2i+1 of scales_h << 4; y = (d*(ls - 32)) * level."""
    d = f16(b[:, 0:2].copy())
    sh = b[:, 2:4].copy().view("<u2").astype(np.int32)
    i = np.arange(8)
    ls = ((b[:, 4 + i // 2].astype(np.int32) >> (4 * (i % 2))) & 15) | (((sh >> (2 * i)) & 3) << 4)
    dl = d[:, None] * (ls - 32).astype(np.float32)
    q = np.concatenate([nibbles(b[:, 8 + 16 * k:24 + 16 * k]) for k in range(8)], axis=1)
    return dl[:, _V // 32] * IQ4_LEVELS[q]


def trits(x, n):
    """Trit n (0, 1, 2) of bytes holding base-3 fractions: ((x * 3^n mod 256) * 3) >> 8."""
    return (((x.astype(np.uint32) * 3 ** n) & 255) * 3) >> 8


def dequant_tq1_0(b):
    """TQ1_0: qs[48] (5 trits a byte), qh[4] (4 a byte), d; y = (t - 1) * d, values in the order
    qs[0:32] trit by trit, qs[32:48] trit by trit, then qh."""
    d = f16(b[:, 52:54].copy())
    parts = [trits(b[:, 0:32], n) for n in range(5)] + [trits(b[:, 32:48], n) for n in range(5)]
    parts += [trits(b[:, 48:52], n) for n in range(4)]
    t = np.concatenate(parts, axis=1).astype(np.int32)
    return (t - 1).astype(np.float32) * d[:, None]


def dequant_tq2_0(b):
    """TQ2_0: qs[64] (2 bits a value), d; value 128h + 32l + m is bits 2l..2l+1 of byte 32h + m; y = (q - 1) * d."""
    d = f16(b[:, 64:66].copy())
    q = (b[:, 32 * (_V // 128) + _V % 32] >> (2 * ((_V % 128) // 32))) & 3
    return (q.astype(np.int32) - 1).astype(np.float32) * d[:, None]


def dequant_q1_0(b):
    """Q1_0: d, qs[16]; value j is bit j % 8 of qs[j / 8]: y = d if set, else -d. d as ggml's
    GGML_FP16_TO_FP32 gives it: a signaling NaN quieted (its conversion ends in a product)."""
    d, j = f16(b[:, 0:2].copy()), np.arange(128)
    d = np.where(np.isnan(d), (d.view(np.uint32) | np.uint32(0x400000)).view(np.float32), d)
    bit = (b[:, 2 + j // 8] >> (j % 8)) & 1
    return np.where(bit == 1, d[:, None], -d[:, None]).astype(np.float32)


def dequant_q2_0(b):
    """Q2_0: d, qs[16]; value j is bits 2(j % 4)..2(j % 4)+1 of qs[j / 4]; y = (q - 1) * d."""
    d, j = f16(b[:, 0:2].copy()), np.arange(64)
    q = (b[:, 2 + j // 4] >> (2 * (j % 4))) & 3
    return (q.astype(np.int32) - 1).astype(np.float32) * d[:, None]


LOW_BIT = {3: dequant_q4_1, 6: dequant_q5_0, 7: dequant_q5_1, 20: dequant_iq4_nl, 10: dequant_q2_k,
           11: dequant_q3_k, 23: dequant_iq4_xs, 34: dequant_tq1_0, 35: dequant_tq2_0, 41: dequant_q1_0,
           42: dequant_q2_0}
LOW_BIT.update({t: dequantize_iq for t, (_, _, _, dequantize_iq) in IQ_TYPES.items()})
