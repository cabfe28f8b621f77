"""ggml's IQ grid types in NumPy for the reference (oracle/gguf_reader.py):
IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S and IQ1_M.

Written from the block layouts of ggml-common.h and the reference
dequantize_row_iq* of ggml-quants.c, not from tempo's kernels: every product
is one float32 operation, in the reference's order, vectorized over blocks.

The grids are llama.cpp's data and never committed here. tempo generates its
copy from ggml-common.h (tools/make_iq_grids.c); the reference takes another
copy, gguf-py's (gguf/quants.py: each grid as hex digits of 2- or 3-bit codes
into a short list of levels, and the sign table ksigns as bytes), and decodes
it itself. So a grid tempo reads wrongly from ggml-common.h differs here.
"""
import os
import sys

import numpy as np

F32 = np.float32
IQ1_DELTA = F32(0.125)  # ggml's IQ1S_DELTA
_GRIDS = {}


def gguf_quants():
    """gguf-py's quants module: on sys.path already (tests/test_llama.py), or the npm source's copy."""
    try:
        import gguf.quants
    except ImportError:
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, os.path.join(here, "..", "build", "llama.cpp", "src", "gguf-py"))
        try:
            import gguf.quants
        except ImportError as e:
            raise ImportError("the IQ grids come from llama.cpp's gguf-py: run make build/llama.cpp/stamp") from e
    return gguf.quants


def unpack_grid(hex_digits, levels, points, width):
    """A grid written as hex digits of codes into `levels`: 2-bit codes four to a byte (three
    levels) or 3-bit codes one to a nibble (eight levels), low bits first; [points][width] float32."""
    raw = np.frombuffer(bytes.fromhex(hex_digits.decode("ascii")), np.uint8)
    bits = 2 if len(levels) <= 4 else 4
    codes = (raw[:, None] >> (bits * np.arange(8 // bits))) & ((1 << bits) - 1)
    return np.array(levels, F32)[codes.reshape(-1)].reshape(points, width)


def grids():
    """{name: grid} from gguf-py's copy, and 'signs', the 8 sign bits of each 7-bit sign index."""
    if not _GRIDS:
        q = gguf_quants()
        for name, cls in (("iq2xxs", q.IQ2_XXS), ("iq2xs", q.IQ2_XS), ("iq2s", q.IQ2_S), ("iq3xxs", q.IQ3_XXS),
                          ("iq3s", q.IQ3_S), ("iq1s", q.IQ1_S)):
            _GRIDS[name] = unpack_grid(cls.grid_hex, cls.grid_map, *cls.grid_shape)
        ksigns = np.frombuffer(q.IQ2_XXS.ksigns, np.uint8)
        _GRIDS["signs"] = ((ksigns[:, None] >> np.arange(8)) & 1).astype(bool)
    return _GRIDS


def f16(b):
    return b.copy().view("<f2").astype(F32)[..., 0]


def signed(db, points, negative):
    """db * grid value * (-1 where the sign bit is set, else 1): ggml's order."""
    return db * points * np.where(negative, F32(-1), F32(1))


def dequant_iq2_xxs(b):
    """IQ2_XXS: d, then per 32 values 4 index bytes and a word: four 7-bit sign indices (bits 7l..),
    scale s in bits 28..31; db = d * (0.5 + s) * 0.25."""
    g, n = grids(), b.shape[0]
    q = b[:, 2:66].reshape(n, 8, 8)
    aux = q[:, :, 4:8].copy().view("<u4")[..., 0]
    db = (f16(b[:, 0:2])[:, None] * (F32(0.5) + (aux >> 28).astype(F32))) * F32(0.25)
    negative = g["signs"][(aux[..., None] >> (7 * np.arange(4))) & 127]
    return signed(db[:, :, None, None], g["iq2xxs"][q[:, :, 0:4]], negative)


def iq2_scales(d, scales):
    """IQ2_XS/IQ2_S: per 32 values, the low nibble scales groups 0-1, the high nibble 2-3; d * (0.5 + s) * 0.25."""
    s = np.stack([scales & 15, scales >> 4], axis=-1).astype(F32)
    return (d[:, None, None] * (F32(0.5) + s)) * F32(0.25)


def dequant_iq2_xs(b):
    """IQ2_XS: d, qs[32] 16-bit (9-bit grid index, 7-bit sign index above it), scales[8]."""
    g, n = grids(), b.shape[0]
    qs = b[:, 2:66].copy().view("<u2").reshape(n, 8, 4)
    db = iq2_scales(f16(b[:, 0:2]), b[:, 66:74])[:, :, [0, 0, 1, 1]]
    return signed(db[..., None], g["iq2xs"][qs & 511], g["signs"][qs >> 9])


def dequant_iq2_s(b):
    """IQ2_S: d, qs[32] (index low bits), signs[32] (a byte per group), qh[8] (bits 2l, 2l+1 of
    qh[ib]: index bits 8-9 of group l), scales[8] as IQ2_XS's."""
    g, n = grids(), b.shape[0]
    qs, signs, qh = b[:, 2:34].reshape(n, 8, 4), b[:, 34:66].reshape(n, 8, 4), b[:, 66:74]
    index = qs.astype(np.int32) | (((qh[..., None] >> (2 * np.arange(4))) & 3).astype(np.int32) << 8)
    negative = ((signs[..., None] >> np.arange(8)) & 1).astype(bool)
    db = iq2_scales(f16(b[:, 0:2]), b[:, 74:82])[:, :, [0, 0, 1, 1]]
    return signed(db[..., None], g["iq2s"][index], negative)


def dequant_iq3_xxs(b):
    """IQ3_XXS: d, qs[64] (two byte indices of 4-value points per group), a word per 32 values as
    IQ2_XXS's; db = d * (0.5 + s) * 0.5."""
    g, n = grids(), b.shape[0]
    qs = b[:, 2:66].reshape(n, 8, 4, 2)
    aux = b[:, 66:98].copy().view("<u4")
    db = (f16(b[:, 0:2])[:, None] * (F32(0.5) + (aux >> 28).astype(F32))) * F32(0.5)
    negative = g["signs"][(aux[..., None] >> (7 * np.arange(4))) & 127]
    return signed(db[:, :, None, None], g["iq3xxs"][qs].reshape(n, 8, 4, 8), negative)


def dequant_iq3_s(b):
    """IQ3_S: d, qs[64] (index low bits, 8 per 32 values), qh[8] (bit k: index k's bit 8),
    signs[32], scales[4] (nibble per 32 values, low first); db = d * (1 + 2s)."""
    g, n = grids(), b.shape[0]
    qs, qh, signs, scales = b[:, 2:66].reshape(n, 8, 8), b[:, 66:74], b[:, 74:106].reshape(n, 8, 4), b[:, 106:110]
    index = qs.astype(np.int32) | (((qh[..., None] >> np.arange(8)) & 1).astype(np.int32) << 8)
    s = (scales[:, np.arange(8) // 2] >> (4 * (np.arange(8) % 2))) & 15
    db = f16(b[:, 0:2])[:, None] * (1 + 2 * s.astype(np.int32)).astype(F32)
    negative = ((signs[..., None] >> np.arange(8)) & 1).astype(bool)
    return signed(db[:, :, None, None], g["iq3s"][index].reshape(n, 8, 4, 8), negative)


def dequant_iq1_s(b):
    """IQ1_S: d, qs[32] (index low bits), qh[8] 16-bit: bits 3l.. index l's high 3 bits, 12..14 the
    scale (dl = d * (2s + 1)), 15 the delta's sign; y = dl * (grid + delta)."""
    g, n = grids(), b.shape[0]
    qs, qh = b[:, 2:34].reshape(n, 8, 4), b[:, 34:50].copy().view("<u2").astype(np.int32)
    dl = f16(b[:, 0:2])[:, None] * (2 * ((qh >> 12) & 7) + 1).astype(F32)
    delta = np.where(qh & 0x8000, -IQ1_DELTA, IQ1_DELTA)
    index = qs.astype(np.int32) | (((qh[..., None] >> (3 * np.arange(4))) & 7) << 8)
    return dl[:, :, None, None] * (g["iq1s"][index] + delta[:, :, None, None])


def dequant_iq1_m(b):
    """IQ1_M: qs[32], qh[16], four 16-bit scale words whose top nibbles are d (f16, word 0's lowest);
    3-bit scales at bits 6(ib%2) (groups 0-1) and +3 (groups 2-3) of word ib/2; group l's index high
    bits and delta sign are nibble l%2 of qh[2ib + l/2]."""
    g, n = grids(), b.shape[0]
    qs, qh, w = b[:, 0:32].reshape(n, 8, 4), b[:, 32:48].reshape(n, 8, 2), b[:, 48:56].copy().view("<u2")
    bits = (w[:, 0] >> 12) | ((w[:, 1] >> 8) & 0x00F0) | ((w[:, 2] >> 4) & 0x0F00) | (w[:, 3] & 0xF000)
    d = bits.astype("<u2").view("<f2").astype(F32)
    word = w[:, np.arange(8) // 2].astype(np.int32) >> (6 * (np.arange(8) % 2))
    s = np.stack([word & 7, (word >> 3) & 7], axis=-1)[:, :, [0, 0, 1, 1]]
    dl = d[:, None, None] * (2 * s + 1).astype(F32)
    nibble = (qh[:, :, [0, 0, 1, 1]] >> np.array([0, 4, 0, 4], np.uint8)).astype(np.int32) & 15
    index = qs.astype(np.int32) | ((nibble & 7) << 8)
    delta = np.where(nibble & 8, -IQ1_DELTA, IQ1_DELTA)
    return dl[..., None] * (g["iq1s"][index] + delta[..., None])


# ggml type number: (name, values a block, bytes a block, dequantize)
IQ_TYPES = {16: ("IQ2_XXS", 256, 66, dequant_iq2_xxs), 17: ("IQ2_XS", 256, 74, dequant_iq2_xs),
            22: ("IQ2_S", 256, 82, dequant_iq2_s), 18: ("IQ3_XXS", 256, 98, dequant_iq3_xxs),
            21: ("IQ3_S", 256, 110, dequant_iq3_s), 19: ("IQ1_S", 256, 50, dequant_iq1_s),
            29: ("IQ1_M", 256, 56, dequant_iq1_m)}
