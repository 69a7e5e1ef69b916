// Exit decisions as ddnn_tf.core.exits computes them, in float64 like numpy: softmax of the
// float32 logits, normalized entropy, and "exit when eta <= T".
//
// Sums follow numpy's pairwise summation of a contiguous row (eight partial sums, then the
// remainder), so the sums are the same float64 values numpy gets.

/** numpy's pairwise sum of a short contiguous float64 row. */
export function npSum(values) {
  const n = values.length;
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i += 1) res += values[i];
    return res;
  }
  if (n > 128) {
    const half = Math.floor(n / 2 / 8) * 8; // numpy splits blocks at a multiple of 8
    return npSum(values.slice(0, half)) + npSum(values.slice(half));
  }
  const r = Array.from(values.slice(0, 8));
  let i = 8;
  for (; i < n - (n % 8); i += 8) {
    for (let j = 0; j < 8; j += 1) r[j] += values[i + j];
  }
  let res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
  for (; i < n; i += 1) res += values[i];
  return res;
}

/** exits.softmax of one row: float64 probabilities from (float32) logits. */
export function softmax(logits) {
  const x = Array.from(logits, Number);
  const peak = Math.max(...x);
  const e = x.map((v) => Math.exp(v - peak));
  const total = npSum(e);
  return e.map((v) => v / total);
}

/** exits.normalized_entropy of one probability row, in [0, 1]. */
export function normalizedEntropy(probs) {
  const c = probs.length;
  if (c === 1) return 0;
  const terms = probs.map((raw) => {
    const p = Math.min(1, Math.max(0, raw));
    return p > 0 ? p * Math.log(p) : 0;
  });
  const eta = -npSum(terms) / Math.log(c);
  return Math.min(1, Math.max(0, eta));
}

/** Index of the first maximum (numpy's argmax). */
export function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i += 1) if (values[i] > values[best]) best = i;
  return best;
}

/** A sample leaves at an exit when its normalized entropy is at most that exit's T. */
export function confident(entropy, threshold) {
  return entropy <= threshold;
}
