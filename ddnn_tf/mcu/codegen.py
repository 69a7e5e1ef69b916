"""C99 source and header of a device tier, from its :class:`~ddnn_tf.mcu.spec.TierSpec`.

The generated code includes only ``<stdint.h>`` and calls nothing outside itself: no heap,
no libc, no global state except one fixed scratch buffer for the maps
between blocks (none for a one-block device), whose size the header states. Weights are
bit-packed (1 bit each, +1 -> 1) in ``const`` arrays; a +-1 map is packed like the wire's
features (C order, most significant bit first), so the exit head and FC blocks are
XNOR-popcounts over bytes. Each block is integer arithmetic with thresholds where
:mod:`ddnn_tf.mcu.exact` proves them exact, else the binary's float32 sums in the
binary's order. The one entry point::

    int ddnn_device_3(const uint8_t *sensor, uint8_t *summary, uint8_t *features);

reads the sensor message and writes the tier's wire messages (``summary`` in the
manifest's encoding, ``features`` bit-packed); it returns 0, or -1 for a NULL buffer.
Float code must be compiled without contracting multiply-adds (``-ffp-contract=off``;
GCC's ISO modes such as ``-std=c99`` already do). Numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ddnn_tf.errors import FormatError
from ddnn_tf.mcu.exact import BlockPlan, TierPlan, plan_tier
from ddnn_tf.mcu.spec import ConvBlock, DenseBlock, TierSpec

__all__ = ["CSources", "generate_c"]


@dataclass(frozen=True)
class CSources:
    """A tier's generated C files and the facts the header states.

    Attributes:
        tier: the tier name; ``entry`` the C function; ``source`` / ``header`` the
            file names; ``c`` / ``h`` their text; ``plan`` the arithmetic per block;
            ``spec`` the tier they were generated from.
    """

    tier: str
    entry: str
    source: str
    header: str
    c: str
    h: str
    sensor_bytes: int
    summary_bytes: int
    features_bytes: int
    scratch_bytes: int
    plan: TierPlan
    spec: TierSpec

    @property
    def arithmetic(self) -> dict[str, str]:
        plans = [*self.plan.blocks, *([self.plan.head] if self.plan.head else [])]
        return {p.layer: p.arithmetic for p in plans}


# ------------------------------------------------------------------ formatting
def _array(ctype: str, name: str, values, per_line: int = 16) -> str:
    vals = [str(int(v)) for v in np.asarray(values).ravel()]
    if not vals:
        vals = ["0"]
    lines = [", ".join(vals[i : i + per_line]) for i in range(0, len(vals), per_line)]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{len(vals)}] = {{\n    {body}\n}};\n"


def _float_literal(x) -> str:
    """A C float literal that parses to exactly this float32 (9 significant digits)."""
    v = np.float32(x)
    if not np.isfinite(v):
        raise FormatError(f"a non-finite constant {v} in the tier")
    if v == 0:
        return "-0.0f" if np.signbit(v) else "0.0f"
    text = f"{float(v):.9g}"
    return (text if any(c in text for c in ".e") else text + ".0") + "f"


def _floats(name: str, values) -> str:
    vals = [_float_literal(v) for v in np.asarray(values, np.float32).ravel()]
    lines = [", ".join(vals[i : i + 6]) for i in range(0, len(vals), 6)]
    return f"static const float {name}[{len(vals)}] = {{\n    " + ",\n    ".join(lines) + "\n};\n"


def _packed_rows(signs: np.ndarray) -> tuple[np.ndarray, int]:
    """``(rows, k)`` bools -> ``(rows, ceil(k/8))`` bytes, each row MSB first, zero padded."""
    rows = signs.reshape(signs.shape[0], -1)
    return np.packbits(rows.astype(np.uint8), axis=1), rows.shape[1]


def _int_type(values, *, signed: bool) -> str:
    v = np.asarray(values)
    lo, hi = (int(v.min()), int(v.max())) if v.size else (0, 0)
    if signed:
        return "int16_t" if -32768 <= lo and hi <= 32767 else "int32_t"
    return "uint8_t" if 0 <= lo and hi <= 255 else ("uint16_t" if hi <= 65535 else "uint32_t")


def _pool_geometry(size: int, stride: int, n: int) -> tuple[int, int]:
    """``(outputs, pad_before)`` of TF "same" pooling over ``n`` positions."""
    out = -(-n // stride)
    pad = max((out - 1) * stride + size - n, 0) // 2
    return out, pad


_BIT_FUNCTIONS = """\
static unsigned get_bit(const uint8_t *p, unsigned i)
{
    return (p[i >> 3] >> (7u - (i & 7u))) & 1u;
}

static void set_bit(uint8_t *p, unsigned i)
{
    p[i >> 3] = (uint8_t)(p[i >> 3] | (0x80u >> (i & 7u)));
}

static void clear_bytes(uint8_t *p, unsigned n)
{
    unsigned i;
    for (i = 0; i < n; i++)
        p[i] = 0;
}
"""

_POPCOUNT = """\
/* Bits where a and b differ, over n bytes (padding bits are zero in both). */
static unsigned mismatches(const uint8_t *a, const uint8_t *b, unsigned n)
{
    unsigned i, total = 0;
    for (i = 0; i < n; i++) {
        unsigned v = (unsigned)(a[i] ^ b[i]);
        v = v - ((v >> 1) & 0x55u);
        v = (v & 0x33u) + ((v >> 2) & 0x33u);
        total += (v + (v >> 4)) & 0x0Fu;
    }
    return total;
}
"""

_SENSOR_FLOAT = """\
static float sensor_value(const uint8_t *sensor, unsigned i)
{
    uint32_t u = (uint32_t)sensor[4 * i] | ((uint32_t)sensor[4 * i + 1] << 8)
               | ((uint32_t)sensor[4 * i + 2] << 16) | ((uint32_t)sensor[4 * i + 3] << 24);
    union { uint32_t u; float f; } bits; /* the same 32 bits read as a float32 */
    bits.u = u;
    return bits.f;
}
"""


# ------------------------------------------------------------------ blocks
def _conv_decision(
    block: ConvBlock, plan: BlockPlan, name: str, out_bit: str
) -> tuple[list[str], str]:
    """The constants of a ConvP block's batch norm and sign, and the C that sets an output
    bit from the pooled sum ``best``: integer thresholds, or the binary's float MUL, ADD."""
    if plan.arithmetic == "integer":
        parts = [
            _array(_int_type(plan.thresholds, signed=True), f"{name}_t", plan.thresholds),
            _array("uint8_t", f"{name}_up", plan.up.astype(np.uint8)),
        ]
        decide = f"""\
                if ({name}_up[fo] ? best >= {name}_t[fo] : best <= {name}_t[fo])
                    set_bit(out, {out_bit});
"""
        return parts, decide
    parts = [_floats(f"{name}_mul", block.mul), _floats(f"{name}_add", block.add)]
    decide = f"""\
                {{
                    float z = best * {name}_mul[fo]; /* the binary's MUL, then its ADD */
                    z = z + {name}_add[fo];
                    if (z >= 0.0f)
                        set_bit(out, {out_bit});
                }}
"""
    return parts, decide


class _Taps(NamedTuple):
    """How a ConvP block reads its input and sums its taps (C snippets and types)."""

    value: str  # one input value at ``pix``
    acc: str  # the accumulator type
    init: str
    best_init: str  # below every sum: the max-pool's start
    border: str  # the padded row's border value
    tap: tuple[str, str]  # one tap's update, for a +1 and for a -1 weight
    row_type: str  # the padded row's type
    skip_row: str  # what a border row of the 3x3 window adds
    what: str  # the sum, in words


def _conv_taps(block: ConvBlock, integer: bool, name: str, sensor, uses: set[str]) -> _Taps:
    """How a ConvP block reads its input and sums its taps: the C of one input value, the
    accumulator and padded-row types, the border, one tap's update per weight sign, the
    skipped (border) row, and a description of the sum."""
    h, w, c = block.in_shape
    pix = f"((unsigned)iy * {w}u + (unsigned)x) * {c}u + ci"
    if block.real_input:
        peak = sensor.max_centred if sensor.coded else 255
        small = "int16_t" if peak * 9 * c <= 32767 else "int32_t"
        if sensor.coded:
            value = f"({small})sensor_code(in, {pix}, ci)"
            uses.add("sensor_code")
        elif sensor.dtype == "uint8":
            value = f"({'int16_t' if integer else 'float'})in[{pix}]"
            if not integer:
                value = f"(float)in[{pix}] * {_float_literal(sensor.scale)}"
        else:
            value = f"sensor_value(in, {pix})"
            uses.add("sensor_float")
        if integer:
            acc = small
            init, best_init, border = "0", ("-32768" if acc == "int16_t" else "INT32_MIN"), "0"
            tap = f"r[x] = ({acc})(r[x] + p[x * {c}u]);", f"r[x] = ({acc})(r[x] - p[x * {c}u]);"
        else:
            acc, init, best_init, border = "float", "0.0f", "-3.0e38f", "0.0f"
            tap = f"r[x] += p[x * {c}u];", f"r[x] += -p[x * {c}u];"
        return _Taps(
            value=value,
            acc=acc,
            init=init,
            best_init=best_init,
            border=border,
            tap=tap,
            row_type=acc,
            skip_row=f"k += {3 * c}u; /* a zero border row adds nothing */",
            what="the sum of the +-weighted inputs, zero border",
        )
    if not integer:
        raise AssertionError(f"{name}: a binary ConvP block is always integer")
    acc = "int16_t" if 9 * c <= 32767 else "int32_t"
    # agreements: +1 where input bit and weight bit are equal
    return _Taps(
        value=f"(uint8_t)get_bit(in, {pix})",
        acc=acc,
        init="0",
        best_init="-1",
        border="1",
        row_type="uint8_t",
        tap=(f"r[x] = ({acc})(r[x] + p[x * {c}u]);", f"r[x] = ({acc})(r[x] + 1 - p[x * {c}u]);"),
        skip_row=f"""for (kx = 0; kx < {3 * c}; kx++, k++) /* a +1 border row */
                            for (x = 0; x < {w}; x++)
                                r[x] = ({acc})(r[x] + wb[k]);""",
        what="the number of taps where input and weight agree, +1 border",
    )


def _conv(block: ConvBlock, plan: BlockPlan, name: str, sensor) -> tuple[str, set[str]]:
    h, w, c = block.in_shape
    f = block.signs.shape[0]
    size, stride = block.pool
    ho, pad_y = _pool_geometry(size, stride, h)
    wo, pad_x = _pool_geometry(size, stride, w)
    if (ho, wo, f) != tuple(block.out_shape):
        raise AssertionError(f"{name}: pooled shape {(ho, wo, f)} != {block.out_shape}")
    weights = np.packbits(block.signs.reshape(-1).astype(np.uint8))
    uses = {"bits"}
    integer = plan.arithmetic == "integer"
    out_bit = f"((unsigned)oy * {wo}u + (unsigned)ox) * {f}u + fo"
    constants, decide = _conv_decision(block, plan, name, out_bit)
    parts = [_array("uint8_t", f"{name}_w", weights), *constants]
    taps = _conv_taps(block, integer, name, sensor, uses)
    value, acc, init, best_init, border, tap, row_type, skip_row, what = taps
    code = f"""\
/* {name}: 3x3 binary convolution ({"real" if block.real_input else "+-1"} input {h}x{w}x{c}, {f} filters),
 * {size}x{size}/{stride} max-pool -> {ho}x{wo}x{f}, batch norm, sign. s = {what};
 * {"integer thresholds" if integer else "float32 in the binary's order (taps ky, kx, channel)"}. The conv rows a pooled row
 * needs are kept in a ring of {size} rows; each input row is read once into a padded row. */
{"".join(parts)}
static void {name}(const uint8_t *in, uint8_t *out)
{{
    {acc} ring[{size}][{w}];
    {row_type} pad[{(w + 2) * c}];
    uint8_t wb[{9 * c}];
    unsigned fo, k, ci;
    int oy, ox, kx, x;
    clear_bytes(out, {(ho * wo * f + 7) // 8}u);
    for (fo = 0; fo < {f}u; fo++) {{
        int next = 0;
        for (k = 0; k < {9 * c}u; k++)
            wb[k] = (uint8_t)get_bit({name}_w, fo * {9 * c}u + k);
        for (oy = 0; oy < {ho}; oy++) {{
            int y0 = oy * {stride} - {pad_y}, y1 = y0 + {size - 1};
            if (y0 < 0)
                y0 = 0;
            if (y1 > {h - 1})
                y1 = {h - 1};
            for (; next <= y1; next++) {{ /* conv row `next`: taps outer, x inner */
                {acc} *r = ring[next % {size}];
                int ky;
                for (x = 0; x < {w}; x++)
                    r[x] = {init};
                k = 0;
                for (ky = 0; ky < 3; ky++) {{
                    int iy = next + ky - 1;
                    if (iy < 0 || iy >= {h}) {{
                        {skip_row}
                        continue;
                    }}
                    for (ci = 0; ci < {c}u; ci++) {{
                        pad[ci] = {border};
                        pad[{(w + 1) * c}u + ci] = {border};
                        for (x = 0; x < {w}; x++)
                            pad[(unsigned)(x + 1) * {c}u + ci] = {value};
                    }}
                    for (kx = 0; kx < 3; kx++) {{
                        for (ci = 0; ci < {c}u; ci++, k++) {{
                            const {row_type} *p = pad + (unsigned)kx * {c}u + ci;
                            if (wb[k]) {{
                                for (x = 0; x < {w}; x++)
                                    {tap[0]}
                            }} else {{
                                for (x = 0; x < {w}; x++)
                                    {tap[1]}
                            }}
                        }}
                    }}
                }}
            }}
            for (ox = 0; ox < {wo}; ox++) {{
                int x0 = ox * {stride} - {pad_x}, x1 = x0 + {size - 1}, y;
                {acc} best = {best_init};
                if (x0 < 0)
                    x0 = 0;
                if (x1 > {w - 1})
                    x1 = {w - 1};
                for (y = y0; y <= y1; y++) {{
                    const {acc} *row = ring[y % {size}];
                    for (x = x0; x <= x1; x++)
                        if (row[x] > best)
                            best = row[x];
                }}
{decide}            }}
        }}
    }}
}}
"""
    return code, uses


def _agree(name: str, k: int, nbytes: int) -> str:
    """C declaring ``agree``: how many of the ``k`` input bits equal row ``j`` of ``<name>_w``."""
    return f"""\
        int32_t agree = {k} - (int32_t)mismatches(in, {name}_w + j * {nbytes}u, {nbytes}u);
"""


def _float_sum(name: str, k: int, nbytes: int) -> str:
    """C computing ``acc``, row ``j``'s sum in float32 in the binary's order."""
    return f"""\
        float acc = {name}_bias[j]; /* the binary's sum: bias first, then inputs in order */
        const float term[2] = {{-{name}_scale[j], {name}_scale[j]}}; /* disagree, agree */
        const uint8_t *w = {name}_w + j * {nbytes}u;
        unsigned b, i = 0;
        for (b = 0; b < {nbytes}u; b++) {{
            unsigned agree = ~(unsigned)(in[b] ^ w[b]);
            int bit;
            for (bit = 7; bit >= 0 && i < {k}u; bit--, i++)
                acc += term[(agree >> bit) & 1u];
        }}
"""


def _dense(block: DenseBlock, plan: BlockPlan, name: str, sensor) -> tuple[str, set[str]]:
    rows, k = _packed_rows(block.signs)
    nbytes = rows.shape[1]
    u = block.units
    parts = [_array("uint8_t", f"{name}_w", rows)]
    uses = {"bits"}
    if block.real_input:  # uint8 values or int codes, integer sums (exact.py refuses the rest)
        parts.append(_array(_int_type(plan.thresholds, signed=True), f"{name}_t", plan.thresholds))
        read = "sensor_code(in, i, i)" if sensor.coded else "(int32_t)in[i]"
        if sensor.coded:
            uses.add("sensor_code")
        body = f"""\
        int32_t s = 0;
        unsigned i;
        for (i = 0; i < {k}u; i++) {{
            int32_t v = {read};
            s += get_bit({name}_w + j * {nbytes}u, i) ? v : -v;
        }}
        if (s >= {name}_t[j])
            set_bit(out, j);
"""
    elif plan.arithmetic == "integer":
        uses.add("popcount")
        parts.append(_array(_int_type(plan.thresholds, signed=True), f"{name}_t", plan.thresholds))
        body = _agree(name, k, nbytes)
        body += f"""\
        if (agree >= {name}_t[j])
            set_bit(out, j);
"""
    else:
        parts.append(_floats(f"{name}_scale", block.scale))
        parts.append(_floats(f"{name}_bias", block.bias))
        body = _float_sum(name, k, nbytes)
        body += """\
        if (acc >= 0.0f)
            set_bit(out, j);
"""
    code = f"""\
/* {name}: binary dense {k} -> {u} ({"real" if block.real_input else "+-1"} input), batch norm, sign. */
{"".join(parts)}
static void {name}(const uint8_t *in, uint8_t *out)
{{
    unsigned j;
    clear_bytes(out, {(u + 7) // 8}u);
    for (j = 0; j < {u}u; j++) {{
{body}    }}
}}
"""
    return code, uses


def _head(spec: TierSpec, plan: BlockPlan) -> tuple[str, set[str]]:
    head = spec.head
    rows, k = _packed_rows(head.signs)
    nbytes = rows.shape[1]
    n = head.classes
    parts = [_array("uint8_t", "head_w", rows)]
    uses = {"bits"}
    if plan.arithmetic == "integer":  # int4 only: the code is a step function of agree
        uses.add("popcount")
        parts.append(_array(_int_type(plan.thresholds, signed=False), "head_t", plan.thresholds))
        value = _agree("head", k, nbytes)
        value += """\
        int q = -8;
        unsigned t;
        for (t = 0; t < 15u; t++)
            q += agree >= (int32_t)head_t[j * 15u + t];
"""
    else:
        parts.append(_floats("head_scale", head.scale))
        parts.append(_floats("head_bias", head.bias))
        value = _float_sum("head", k, nbytes)
        if head.encoding == "int4":
            value += """\
        float t = acc + 0.5f; /* the binary's floor(acc + 0.5) clipped to [-8, 7] */
        int q;
        if (t >= 7.0f) {
            q = 7;
        } else if (t < -7.0f) {
            q = -8;
        } else {
            int32_t i0 = (int32_t)t;
            q = (int)(i0 - (t < (float)i0));
        }
"""
    if head.encoding == "int4":
        clear = f"    clear_bytes(summary, {head.summary_nbytes}u);\n"
        write = """\
        summary[j >> 1] = (uint8_t)(summary[j >> 1] | (((unsigned)q & 0xFu) << ((j & 1u) * 4u)));
"""
    else:
        clear = ""
        write = """\
        union { float f; uint32_t u; } bits; /* little-endian float32 on the wire */
        uint32_t u;
        bits.f = acc;
        u = bits.u;
        summary[4 * j] = (uint8_t)u;
        summary[4 * j + 1] = (uint8_t)(u >> 8);
        summary[4 * j + 2] = (uint8_t)(u >> 16);
        summary[4 * j + 3] = (uint8_t)(u >> 24);
"""
    how = "integer thresholds" if plan.arithmetic == "integer" else "float32 in the binary's order"
    code = f"""\
/* head: binary dense {k} -> {n} classes, batch norm folded, {head.encoding} summary; {how}. */
{"".join(parts)}
static void head(const uint8_t *in, uint8_t *summary)
{{
    unsigned j;
{clear}    for (j = 0; j < {n}u; j++) {{
{value}{write}    }}
}}
"""
    return code, uses


def _sensor_code(sensor) -> str:
    """C reading a coded sensor value: its int8 / int16 code minus its channel's zero point."""
    zero = _array("int16_t", "sensor_zero", sensor.zero_point)
    if sensor.dtype == "int8":
        read = """\
    int32_t v = (int32_t)sensor[i];
    if (v > 127)
        v -= 256;"""
    else:
        read = """\
    int32_t v = (int32_t)sensor[2 * i] | ((int32_t)sensor[2 * i + 1] << 8);
    if (v > 32767)
        v -= 65536;"""
    return f"""\
/* Sensor value i: its {sensor.dtype} code (little-endian) minus the zero point of its
 * channel c, the integer the binary reads. */
{zero}
static int32_t sensor_code(const uint8_t *sensor, unsigned i, unsigned c)
{{
{read}
    return v - sensor_zero[c];
}}
"""


def _describe_sensor(spec: TierSpec) -> str:
    shape = "x".join(map(str, spec.sensor.shape))
    if spec.sensor.coded:
        return (
            f"{spec.sensor.dtype} codes, {shape} (C order, little-endian); the binary reads "
            "code - zero point of the value's channel"
        )
    if spec.sensor.dtype == "uint8":
        return f"uint8 values, {shape} (C order); the binary reads value * {float(spec.sensor.scale):.9g}"
    return f"little-endian float32 values, {shape} (C order)"


def generate_c(spec: TierSpec, *, plan: TierPlan | None = None, origin: str = "") -> CSources:
    """C source and header of one device tier.

    Args:
        spec: the tier (from :func:`ddnn_tf.mcu.lower.lower_tier`).
        plan: its arithmetic plan (default :func:`ddnn_tf.mcu.exact.plan_tier`).
        origin: a line naming the binary it was generated from, for the file comments.

    Returns:
        :class:`CSources` with ``<tier>.c`` and ``<tier>.h``.

    Example:
        >>> from ddnn_tf.mcu.lower import lower_tier
        >>> data = open("tflite_models/fmnist6_mlpcc/device_0.tflite", "rb").read()
        >>> src = generate_c(lower_tier("device_0", data, scale=1 / 255))
        >>> src.entry, src.summary_bytes, src.features_bytes, src.scratch_bytes
        ('ddnn_device_0', 5, 18, 0)
        >>> src.arithmetic
        {'conv1': 'integer', 'head': 'float'}
    """
    plan = plan or plan_tier(spec)
    tier = spec.name
    entry = f"ddnn_{tier}"
    half = _scratch_halves(spec)
    scratch = half[0] + half[1]
    uses: set[str] = set()
    layers: list[str] = []
    calls = []
    for k, (block, bplan) in enumerate(zip(spec.blocks, plan.blocks)):
        make = _conv if isinstance(block, ConvBlock) else _dense
        code, need = make(block, bplan, bplan.layer, spec.sensor)
        layers.append(code)
        uses |= need
        src = "sensor" if k == 0 else ("scratch" if (k - 1) % 2 == 0 else f"scratch + {half[0]}")
        last = k == len(spec.blocks) - 1
        dst = "features" if last else ("scratch" if k % 2 == 0 else f"scratch + {half[0]}")
        calls.append(f"    {bplan.layer}({src}, {dst});")
    if spec.head is not None:
        code, need = _head(spec, plan.head)
        layers.append(code)
        uses |= need
        calls.append("    head(features, summary);")
    pieces = [
        text
        for key, text in (
            ("bits", _BIT_FUNCTIONS),
            ("popcount", _POPCOUNT),
            ("sensor_float", _SENSOR_FLOAT),
            ("sensor_code", _sensor_code(spec.sensor) if spec.sensor.coded else ""),
        )
        if key in uses
    ]
    return CSources(
        tier=tier,
        entry=entry,
        source=f"{tier}.c",
        header=f"{tier}.h",
        c=_source_text(spec, entry, scratch, pieces, layers, calls),
        h=_header_text(spec, plan, entry, scratch, origin),
        sensor_bytes=spec.sensor.nbytes,
        summary_bytes=spec.summary_nbytes,
        features_bytes=spec.features_nbytes,
        scratch_bytes=scratch,
        plan=plan,
        spec=spec,
    )


def _scratch_halves(spec: TierSpec) -> list[int]:
    """Bytes of the two scratch halves: block k (not the last) writes half k % 2."""
    sizes = [(int(np.prod(b.out_shape)) + 7) // 8 for b in spec.blocks[:-1]]
    return [max(sizes[p::2], default=0) for p in (0, 1)]


def _header_text(spec: TierSpec, plan: TierPlan, entry: str, scratch: int, origin: str) -> str:
    tier, macro = spec.name, f"DDNN_{spec.name.upper()}"
    arithmetic = ", ".join(
        f"{p.layer} {p.arithmetic}" for p in [*plan.blocks, *([plan.head] if plan.head else [])]
    )
    if spec.head is None:
        summary_desc = "none (this tier sends no summary; pass NULL)"
    else:
        packing = (
            "two per byte, low nibble first" if spec.head.encoding == "int4" else "little-endian"
        )
        summary_desc = f"{spec.head.encoding}, {spec.head.classes} classes, {packing}"
    fshape = "x".join(map(str, spec.features_shape))
    origin_line = f" from {origin}" if origin else ""
    return f"""\
/* {tier}: a DDNN end-device tier in C99 (no heap, no libc: <stdint.h> only).
 * Generated by ddnn_tf.mcu{origin_line}.
 *
 * {entry}(sensor, summary, features) reads {macro}_SENSOR_BYTES of sensor input and
 * writes the tier's wire messages, byte for byte those of the portable TFLite binary:
 *   sensor   {_describe_sensor(spec)}
 *   summary  {summary_desc}
 *   features +-1 map {fshape}, bit-packed in C order, most significant bit first, +1 -> 1
 * Returns 0, or -1 when a buffer is NULL. Not reentrant: blocks share one static
 * scratch buffer of {macro}_SCRATCH_BYTES bytes. Arithmetic per block: {arithmetic}.
 * Compile float code without contracted multiply-adds (-ffp-contract=off; -std=c99 does);
 * -fno-tree-loop-distribute-patterns keeps GCC from turning its loops into memset calls.
 */
#ifndef {macro}_H
#define {macro}_H

#include <stdint.h>

#define {macro}_SENSOR_BYTES {spec.sensor.nbytes}
#define {macro}_SUMMARY_BYTES {spec.summary_nbytes}
#define {macro}_FEATURES_BYTES {spec.features_nbytes}
#define {macro}_SCRATCH_BYTES {scratch}

int {entry}(const uint8_t *sensor, uint8_t *summary, uint8_t *features);

#endif
"""


def _source_text(spec, entry: str, scratch: int, pieces, layers, calls) -> str:
    tier = spec.name
    need_summary = "|| !summary " if spec.head is not None else ""
    unused = "" if spec.head is not None else "    (void)summary;\n"
    scratch_decl = f"static uint8_t scratch[{scratch}];\n\n" if scratch else ""
    uses = "".join(p + "\n" for p in pieces)
    body = "\n".join(calls)
    return f"""\
/* {tier}: generated C99 for a DDNN end device; see {tier}.h. */
#include <stdint.h>

#include "{tier}.h"

{scratch_decl}{uses}{chr(10).join(layers)}
int {entry}(const uint8_t *sensor, uint8_t *summary, uint8_t *features)
{{
{unused}    if (!sensor {need_summary}|| !features)
        return -1;
{body}
    return 0;
}}
"""
