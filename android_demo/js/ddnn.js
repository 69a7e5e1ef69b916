// The DDNN on the phone: the manifest's device tiers and local aggregator run in the page
// with LiteRT.js; a sample whose local exit is not confident goes to the cloud tier as a
// POST /v1/cloud record. The protocol is specified in docs/protocol.md ("Wire protocol").
//
// Everything model-specific comes from the manifest: tiers, tensor names and shapes, input
// scale, wire encodings, classes and thresholds.

import { loadAndCompile, loadLiteRt, Tensor } from '@litertjs/core';
import { argmax, confident, normalizedEntropy, softmax } from './exits.js';
import { GatewayLink } from './gateway.js';
import { packFeatures, packPresence, sendSummary, summaryCodec } from './wire.js';

const TARGET = 'portable';
const SIGNATURE = 'serving_default';
const FEATURES_CONTENT_TYPE = 'application/vnd.ddnn.features';

const prod = (shape) => shape.reduce((a, b) => a * b, 1);
const now = () => performance.now();

/** Where a tier input comes from: the manifest's tier graph says it, never its name. */
function fromOf(spec) {
  if (!spec.from) fail(`tier input ${JSON.stringify(spec.name)} does not say where it comes from`);
  return spec.from;
}

/**
 * A quantised sensor's values as its device tier reads them: per channel (the last axis)
 * code = clip(floor(x / scale + 0.5) + zero_point) in int8 / int16, minus zero_point
 * (ddnn_tf.core.sensors; each step one float32 operation, as numpy and C compute it).
 * @param {ArrayLike<number>} values the sensor's real values, C order
 * @param {{bits: number, scale: number[], zero_point: number[]}} q the manifest's quantizer
 * @returns {Float32Array} the centred codes
 */
export function quantizeSensor(values, q) {
  const channels = q.scale.length;
  if (values.length % channels !== 0) fail(`${values.length} sensor values for ${channels} channels`);
  const lo = -(2 ** (q.bits - 1));
  const hi = 2 ** (q.bits - 1) - 1;
  const scale = q.scale.map((s) => Math.fround(s));
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i += 1) {
    const x = Math.fround(values[i]);
    if (!Number.isFinite(x)) fail(`sensor value ${i} is ${values[i]}; a quantised device needs numbers`);
    const c = i % channels;
    const t = Math.floor(Math.fround(Math.fround(x / scale[c]) + 0.5));
    const code = Math.min(hi, Math.max(lo, t + q.zero_point[c]));
    out[i] = code - q.zero_point[c];
  }
  return out;
}

/** What a manifest's `calibration` certifies, in the words of Calibration.describe. */
export function certifiedLine(calibration) {
  if (!calibration) return '';
  const where = `on ${calibration.n_val} validation samples`;
  if (calibration.delta === null || calibration.delta === undefined) {
    return `${where} (no certified bound)`;
  }
  if (calibration.certified) {
    return `${where}: drop vs. all-cloud ≤ ${calibration.bound.toFixed(2)} points `
      + `with probability ≥ ${(1 - calibration.eps).toFixed(2)}`;
  }
  return `${where}: nothing certified (${calibration.note})`;
}

function fail(message) {
  throw new Error(`manifest: ${message}`);
}

async function sha256Hex(bytes) {
  if (!globalThis.crypto?.subtle) return null; // not a secure context: no SubtleCrypto
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** One tier binary, run by tensor name. */
class Tier {
  constructor(name, meta, model) {
    this.name = name;
    this.meta = meta;
    this.model = model;
  }

  /** Run on {input name: Float32Array}; resolves to {output name: Float32Array}. */
  async run(feeds) {
    const inputs = {};
    for (const spec of this.meta.inputs) {
      const data = feeds[spec.name];
      if (!data || data.length !== prod(spec.shape)) {
        throw new Error(`tier ${this.name}: input ${spec.name} needs ${prod(spec.shape)} values`);
      }
      inputs[spec.name] = new Tensor(data, spec.shape);
    }
    try {
      const outputs = await this.model.run(SIGNATURE, inputs);
      const result = {};
      for (const [key, tensor] of Object.entries(outputs)) {
        result[key] = Float32Array.from(await tensor.data());
        tensor.delete();
      }
      return result;
    } finally {
      Object.values(inputs).forEach((t) => t.delete());
    }
  }
}

/** The loaded model: call classifyViews(views) per sample. */
export class Ddnn {
  /**
   * @param {object} manifest the parsed manifest.json
   * @param {object} options {modelId, tiers: {name: Tier}, cloudUrl, cloudTimeoutMs, token}
   */
  constructor(manifest, options) {
    this.manifest = manifest;
    this.modelId = options.modelId;
    this.tiers = options.tiers;
    this.cloudUrl = options.cloudUrl;
    this.cloudTimeoutMs = options.cloudTimeoutMs;
    this.token = options.token;
    this.classes = manifest.classes;
    this.exits = manifest.split;
    this.threshold = Number(manifest.thresholds?.local ?? 1);
    // the rule that chose it on the validation split (e.g. risk:0.5,0.1), when recorded,
    // and what it certifies (docs/converting.md, the manifest's `calibration`)
    this.calibration = manifest.thresholds_source === 'paper'
      ? 'paper'
      : (manifest.calibration?.rule ?? manifest.training?.calibrate ?? null);
    this.certified = certifiedLine(manifest.calibration);
    this.summaryCodec = summaryCodec(manifest.wire.summary.encoding ?? 'float32');
    this.inputs = [...manifest.inputs].sort((a, b) => a.device - b.device);
    this.deviceTiers = this.inputs.map((spec) => spec.tier);
    this.cloud = manifest.tiers.cloud;
    this.cloudPresence = this.cloud.inputs.find((s) => s.role === 'presence');
    // which output of each sender the cloud reads (its features), by sender tier
    this.cloudFeatures = Object.fromEntries(this.cloud.inputs
      .filter((s) => s.role === 'features')
      .map((s) => [fromOf(s).tier, fromOf(s).output]));
    const agg = manifest.tiers.local_aggregator;
    this.localLogits = agg?.outputs.find((o) => o.role === 'logits')?.name ?? 'logits';
    // which output of each device is its summary, by device tier
    this.summaryOf = Object.fromEntries((agg?.inputs ?? [])
      .filter((s) => s.role === 'summary')
      .map((s) => [fromOf(s).tier, fromOf(s).output]));
    this.gateway = options.gateway ?? null; // a GatewayLink: the page as the gateway's devices
    this.queue = Promise.resolve();
    this.timings = {};
  }

  get numDevices() {
    return this.inputs.length;
  }

  /** Raw bytes a device would send without the DDNN (its uint8 view). */
  rawBytes(device) {
    const spec = this.inputs[device];
    return spec.raw_bytes ?? prod(spec.shape.slice(1));
  }

  /**
   * Classify one sample. Calls are queued: one sample runs at a time.
   * @param {Array<Uint8Array|Float32Array|null>} views one raw view per device: uint8
   *   pixels, or a quantised sensor's real values (null: the device failed)
   * @param {object} [options] {threshold}: T of the local exit (default: this.threshold)
   */
  classifyViews(views, options = {}) {
    const run = this.queue.then(() => this.classifyNow(views, options));
    this.queue = run.catch(() => {});
    return run;
  }

  checkViews(views) {
    if (!Array.isArray(views) || views.length !== this.numDevices) {
      throw new Error(`classifyViews: expected ${this.numDevices} views (one per device), got ${views?.length}`);
    }
    views.forEach((view, d) => {
      if (view === null) return;
      const n = prod(this.inputs[d].shape.slice(1));
      const kind = this.inputs[d].quantizer ? Float32Array : Uint8Array;
      if (!(view instanceof kind) || view.length !== n) {
        throw new Error(`classifyViews: view ${d} must be a ${kind.name} of ${n} values (${this.inputs[d].shape.slice(1).join('x')})`);
      }
    });
  }

  async classifyNow(views, options) {
    this.checkViews(views);
    const threshold = Number(options.threshold ?? this.threshold);
    if (!(threshold >= 0 && threshold <= 1)) {
      throw new Error(`classifyViews: threshold must be in [0, 1], got ${options.threshold}`);
    }
    const timings = {};
    const present = views.map((v) => v !== null);
    const result = {
      prediction: -1, exit: null, entropy: null, probs: null, bytes_up: 0, degraded: false,
      bytes_local: 0, bytes_raw: 0, timings_ms: timings, present,
    };
    if (!present.some(Boolean)) {
      result.exit = 'unclassified';
      return result;
    }
    // 1. every present device runs its tier
    const outputs = {};
    for (let d = 0; d < this.numDevices; d += 1) {
      if (!present[d]) continue;
      const spec = this.inputs[d];
      let x;
      if (spec.quantizer) { // a real-valued sensor: its integer codes (the manifest's quantizer)
        x = quantizeSensor(views[d], spec.quantizer);
      } else {
        const scale = Math.fround(spec.scale ?? 1);
        x = new Float32Array(views[d].length);
        for (let i = 0; i < x.length; i += 1) x[i] = views[d][i] * scale; // float32 product
      }
      const start = now();
      outputs[spec.tier] = await this.tiers[spec.tier].run({ [spec.name]: x });
      timings[spec.tier] = now() - start;
      result.bytes_raw += this.rawBytes(d);
    }
    const arrived = (tier) => outputs[tier] !== undefined;
    if (this.gateway) return this.throughGateway(outputs, result);
    // 2. local exit: summaries over the wire codec, then the local aggregator
    let local = null;
    if (this.tiers.local_aggregator) {
      const agg = this.tiers.local_aggregator;
      const feeds = {};
      for (const spec of agg.meta.inputs) {
        if (spec.role === 'presence') {
          feeds[spec.name] = Float32Array.from(spec.columns, (t) => (arrived(t) ? 1 : 0));
        } else {
          const from = fromOf(spec);
          const out = outputs[from.tier]?.[from.output];
          if (out === undefined) {
            feeds[spec.name] = new Float32Array(prod(spec.shape));
          } else {
            const { received, nbytes } = sendSummary(this.summaryCodec, out);
            feeds[spec.name] = received;
            result.bytes_local += nbytes;
          }
        }
      }
      const start = now();
      const logits = (await agg.run(feeds))[this.localLogits];
      timings.local_aggregator = now() - start;
      const probs = softmax(logits);
      local = { probs, entropy: normalizedEntropy(probs) };
      result.entropy = local.entropy;
      if (confident(local.entropy, threshold)) {
        return Object.assign(result, { exit: 'local', prediction: argmax(probs), probs });
      }
    }
    // 3. the cloud: presence mask + packed features of the present senders
    const columns = this.cloudPresence.columns;
    const parts = [packPresence(columns.map(arrived))];
    let payload = 0;
    for (const sender of columns) {
      if (!arrived(sender)) continue;
      const packed = packFeatures(outputs[sender][this.cloudFeatures[sender]]);
      const expected = this.manifest.wire.features[sender].nbytes;
      if (packed.length !== expected) fail(`wire.features.${sender}.nbytes is ${expected}, packed ${packed.length}`);
      parts.push(packed);
      payload += packed.length;
    }
    const body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    parts.reduce((offset, p) => (body.set(p, offset), offset + p.length), 0);
    const start = now();
    try {
      const answer = await this.postCloud(body);
      timings.cloud = now() - start;
      const { prediction, probs } = answer.results[0];
      return Object.assign(result, { exit: 'cloud', prediction, probs, bytes_up: payload });
    } catch (err) {
      timings.cloud = now() - start;
      result.degraded = true;
      result.error = String(err.message ?? err);
      if (local) Object.assign(result, { exit: 'local', prediction: argmax(local.probs), probs: local.probs });
      return result;
    }
  }

  /**
   * Steps 2 and 3 by a gateway (the page's devices send it their messages): its answer.
   * The gateway's T applies, not the page's.
   */
  async throughGateway(outputs, result) {
    const messages = [];
    for (const spec of this.inputs) {
      const out = outputs[spec.tier];
      if (out === undefined) continue;
      const summary = this.summaryCodec.encode(Array.from(out[this.summaryOf[spec.tier]]));
      const features = packFeatures(out[this.cloudFeatures[spec.tier]]);
      messages.push({ device: spec.device, summary, features });
      result.bytes_local += summary.length;
    }
    const start = now();
    const answer = await this.gateway.round(messages);
    result.timings_ms.gateway = now() - start;
    return Object.assign(result, {
      exit: answer.exit, prediction: answer.prediction, degraded: answer.degraded, bytes_up: answer.bytesUp,
    });
  }

  /** POST one record to the cloud; rejects on a network error, a timeout or a non-200. */
  async postCloud(body) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.cloudTimeoutMs);
    const headers = { 'Content-Type': FEATURES_CONTENT_TYPE, 'X-DDNN-Model': this.modelId ?? '' };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    try {
      const response = await fetch(this.cloudUrl, {
        method: 'POST', headers, body, signal: controller.signal, cache: 'no-store',
      });
      const answer = await response.json().catch(() => null);
      if (!response.ok) {
        const why = answer?.error ? `${answer.error.code}: ${answer.error.message}` : `HTTP ${response.status}`;
        throw new Error(`cloud: ${why}`);
      }
      if (!answer?.results?.length) throw new Error('cloud: no result in the answer');
      return answer;
    } catch (err) {
      if (err.name === 'AbortError') throw new Error(`cloud: no answer within ${this.cloudTimeoutMs} ms`);
      if (err instanceof TypeError) throw new Error(`cloud unreachable (${err.message})`);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The model id the cloud reports (for pages without SubtleCrypto: plain http off localhost). */
async function cloudModelId(url, token) {
  try {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const response = await fetch(url, { cache: 'no-store', headers });
    return response.ok ? (await response.json()).model : null;
  } catch {
    return null; // offline: local exits still work; cloud requests will say model_mismatch
  }
}

function checkManifest(manifest) {
  if (manifest.format !== 'ddnn-tf-manifest') fail(`format is ${JSON.stringify(manifest.format)}, expected "ddnn-tf-manifest"`);
  if (!manifest.split.includes('cloud')) fail(`split ${JSON.stringify(manifest.split)} has no cloud exit`);
  const roles = Object.values(manifest.tiers).map((t) => t.role);
  if (roles.includes('edge')) fail('edge tiers are not run by this app; convert with --split local,cloud');
  if (!roles.includes('device')) fail('no device tiers (the raw-offload split ["cloud"] has nothing to run here)');
  for (const spec of manifest.inputs) {
    if ((spec.raw_dtype ?? 'uint8') !== 'uint8' && !spec.quantizer) {
      fail(`inputs[${spec.device}].raw_dtype must be uint8, or the sensor quantised (quantizer)`);
    }
  }
  for (const [name, tier] of Object.entries(manifest.tiers)) {
    if (tier.role !== 'device' && tier.role !== 'local_aggregator') continue;
    for (const t of [...tier.inputs, ...tier.outputs]) {
      if (t.dtype !== 'float32') fail(`tiers.${name}: tensor ${t.name} is ${t.dtype}; this app feeds and reads float32`);
    }
  }
}

/**
 * Load the manifest, the LiteRT.js runtime and the device/aggregator tiers.
 * @param {object} options {modelUrl (folder of manifest.json), wasmUrl, cloudUrl, cloudTimeoutMs,
 *   token, mode (paper or eager: send the devices' messages to the gateway at gatewayUrl)}
 * @returns {Promise<{ddnn: Ddnn, load: object}>} the model and its load timings (ms)
 */
export async function loadDdnn(options) {
  const load = {};
  let start = now();
  const base = new URL(options.modelUrl, location.href);
  const manifestBytes = await fetchBytes(new URL('manifest.json', base));
  const manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
  checkManifest(manifest);
  let modelId = await sha256Hex(manifestBytes);
  if (modelId === null) modelId = await cloudModelId(options.modelInfoUrl ?? '/v1/model', options.token);
  load.manifest_ms = now() - start;

  start = now();
  await loadLiteRt(options.wasmUrl);
  load.runtime_ms = now() - start;

  start = now();
  const tiers = {};
  for (const [name, meta] of Object.entries(manifest.tiers)) {
    if (meta.role !== 'device' && meta.role !== 'local_aggregator') continue;
    const file = meta.files?.[TARGET];
    if (!file) fail(`tiers.${name} has no ${TARGET} file`);
    const bytes = await fetchBytes(new URL(file.file, base));
    const digest = await sha256Hex(bytes);
    if (digest !== null && digest !== file.sha256) {
      fail(`${file.file}: sha256 ${digest} differs from the recorded ${file.sha256}`);
    }
    tiers[name] = new Tier(name, meta, await loadAndCompile(bytes, { accelerator: 'wasm' }));
  }
  load.tiers_ms = now() - start;
  const ddnn = new Ddnn(manifest, {
    modelId,
    tiers,
    cloudUrl: new URL(options.cloudUrl ?? '/v1/cloud', location.href).href,
    cloudTimeoutMs: options.cloudTimeoutMs ?? 5000,
    token: options.token,
    gateway: null,
  });
  if (options.mode) { // the page as the end devices of the gateway the demo serves
    start = now();
    ddnn.gateway = new GatewayLink({
      url: new URL(options.gatewayUrl ?? 'gateway/', location.href).href,
      modelId,
      token: options.token,
      mode: options.mode,
      timeoutMs: options.cloudTimeoutMs ?? 5000,
    });
    await ddnn.gateway.join(ddnn.inputs.map((spec) => spec.device));
    load.join_ms = now() - start;
  }
  return { ddnn, load };
}
