// What leaves a device tier, byte for byte as ddnn_tf.core.comm writes it. The encodings
// are specified in docs/protocol.md ("Wire protocol", payload encodings).
//
// Class summaries: one codec per wire encoding in SUMMARY_CODECS (float32, float16, int8,
// int4). A new encoding is one more entry there: {nbytes(numClasses), encode(values) ->
// Uint8Array, decode(bytes, numClasses) -> Float32Array}; everything else looks codecs up
// by the name the manifest's wire.summary.encoding gives.
//
// Binary features: packFeatures is comm.pack_features.

const INT8_MAX = 127;
const INT8_SCALE_BYTES = 4;
const F16_MAX = 65504;
const INT4_MIN = -8;
const INT4_MAX = 7;

/** Round half to even, as numpy's rint. */
export function rintEven(x) {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** IEEE half-precision bits of a float64, rounded to nearest even (numpy's astype(float16)). */
export function toFloat16Bits(value) {
  if (Number.isNaN(value)) return 0x7e00;
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const a = Math.abs(value);
  if (a === 0) return sign;
  if (a === Infinity) return sign | 0x7c00;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1;
  if (2 ** (e + 1) <= a) e += 1;
  if (e < -14) {
    return sign | rintEven(a * 2 ** 24); // subnormal (1024 rolls into the smallest normal)
  }
  let m = rintEven((a / 2 ** e - 1) * 1024);
  if (m === 1024) {
    m = 0;
    e += 1;
  }
  if (e + 15 >= 31) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | m;
}

/** float64 value of IEEE half-precision bits. */
export function fromFloat16Bits(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

function checkSummary(values) {
  if (values.length === 0) throw new Error('summary: expected a vector of |C| >= 1 values, got none');
  for (const v of values) {
    if (!Number.isFinite(v)) {
      throw new Error('summary: expected finite values; a failed device sends nothing instead');
    }
  }
}

export const SUMMARY_CODECS = {
  float32: {
    nbytes: (c) => 4 * c,
    encode(values) {
      checkSummary(values);
      const out = new DataView(new ArrayBuffer(4 * values.length));
      values.forEach((v, i) => out.setFloat32(4 * i, v, true));
      return new Uint8Array(out.buffer);
    },
    decode(bytes, c) {
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      return Float32Array.from({ length: c }, (_, i) => view.getFloat32(4 * i, true));
    },
  },
  float16: {
    nbytes: (c) => 2 * c,
    encode(values) {
      checkSummary(values);
      const peak = Math.max(...values.map(Math.abs));
      if (peak > F16_MAX) {
        throw new Error(`summary: |v| = ${peak} is beyond the float16 range (<= ${F16_MAX})`);
      }
      const out = new DataView(new ArrayBuffer(2 * values.length));
      values.forEach((v, i) => out.setUint16(2 * i, toFloat16Bits(v), true));
      return new Uint8Array(out.buffer);
    },
    decode(bytes, c) {
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      return Float32Array.from({ length: c }, (_, i) => fromFloat16Bits(view.getUint16(2 * i, true)));
    },
  },
  int8: {
    nbytes: (c) => c + INT8_SCALE_BYTES,
    encode(values) {
      checkSummary(values);
      const peak = Math.max(...values.map(Math.abs));
      const scale = Math.fround(peak / INT8_MAX);
      const out = new DataView(new ArrayBuffer(INT8_SCALE_BYTES + values.length));
      out.setFloat32(0, scale, true);
      values.forEach((v, i) => {
        const q = scale > 0 ? Math.min(INT8_MAX, Math.max(-INT8_MAX, rintEven(v / scale))) : 0;
        out.setInt8(INT8_SCALE_BYTES + i, q);
      });
      return new Uint8Array(out.buffer);
    },
    decode(bytes, c) {
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const scale = view.getFloat32(0, true);
      return Float32Array.from({ length: c }, (_, i) => Math.fround(view.getInt8(INT8_SCALE_BYTES + i) * scale));
    },
  },
  // A summary that is already integer-valued in [-8, 7] (a device whose exit head rounds its
  // logits): two's-complement nibbles, two per byte, first class in the low nibble, no
  // header. Lossless, and it refuses anything else rather than rounding.
  int4: {
    nbytes: (c) => Math.ceil(c / 2),
    encode(values) {
      checkSummary(values);
      const out = new Uint8Array(Math.ceil(values.length / 2));
      values.forEach((v, i) => {
        if (!Number.isInteger(v) || v < INT4_MIN || v > INT4_MAX) {
          throw new Error(`summary: int4 expects integers in [${INT4_MIN}, ${INT4_MAX}], got ${v}`);
        }
        out[i >> 1] |= (v & 0xf) << (4 * (i & 1));
      });
      return out;
    },
    decode(bytes, c) {
      return Float32Array.from({ length: c }, (_, i) => {
        const nibble = (bytes[i >> 1] >> (4 * (i & 1))) & 0xf;
        return nibble > INT4_MAX ? nibble - 16 : nibble;
      });
    },
  },
};

/** The codec of a summary encoding named by the manifest; throws on an unknown one. */
export function summaryCodec(encoding) {
  const codec = SUMMARY_CODECS[encoding];
  if (!codec) {
    throw new Error(
      `manifest wire.summary.encoding: ${JSON.stringify(encoding)} is not one of ` +
        `${Object.keys(SUMMARY_CODECS).join(', ')}`,
    );
  }
  return codec;
}

/** decode(encode(values)) and the payload size: what the aggregator receives, and its cost. */
export function sendSummary(codec, values) {
  const payload = codec.encode(Array.from(values));
  if (payload.length !== codec.nbytes(values.length)) {
    throw new Error(`summary codec wrote ${payload.length} bytes, expected ${codec.nbytes(values.length)}`);
  }
  return { received: codec.decode(payload, values.length), nbytes: payload.length };
}

/** Bit-pack a ±1 feature tensor (flat, C order) as comm.pack_features. */
export function packFeatures(values) {
  const out = new Uint8Array(Math.ceil(values.length / 8));
  for (let i = 0; i < values.length; i += 1) {
    const v = values[i];
    if (v === 1) out[i >> 3] |= 0x80 >> (i & 7);
    else if (v !== -1) {
      throw new Error(`features: expected values in {-1, +1}, got ${v} at index ${i}; binarise with sign() first`);
    }
  }
  return out;
}

/** The presence mask of a cloud record (docs/protocol.md). */
export function packPresence(present) {
  const out = new Uint8Array(Math.ceil(present.length / 8));
  present.forEach((p, k) => {
    if (p) out[k >> 3] |= 0x80 >> (k & 7);
  });
  return out;
}
