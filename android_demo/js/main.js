// The page: loads the model, wires the camera/gallery/sample inputs, shows the answer.
// window.ddnn is the programmatic entry point (ready, classifyViews).

import { loadDdnn } from './ddnn.js';
import { cutViews, datasetSpec, drawGray, photoToImage } from './preprocess.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const fmt = (ms) => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(1)} ms`);

let model = null;
let spec = null;
let samples = null;
let threshold = null;

let resolveReady;
let rejectReady;
const ready = new Promise((resolve, reject) => {
  resolveReady = resolve;
  rejectReady = reject;
});

let resolveOffline;
let rejectOffline;
const offline = new Promise((resolve, reject) => {
  resolveOffline = resolve;
  rejectOffline = reject;
});
offline.catch((err) => console.warn('offline cache:', err.message));

window.ddnn = {
  ready,
  /** Resolves (to the number of URLs cached) once the app works with no network. */
  offline,
  /** One Uint8Array per device (raw uint8, row-major) -> {prediction, exit, entropy, probs, bytes_up, degraded}. */
  async classifyViews(views, options = {}) {
    await ready;
    return model.classifyViews(views, { threshold: options.threshold ?? threshold });
  },
};

function setStatus(text) {
  $('status').textContent = text;
}

function setNet(online) {
  $('net').textContent = online ? 'cloud online' : 'offline';
  $('net').className = `chip ${online ? 'online' : 'offline'}`;
}

async function probeCloud() {
  try {
    const response = await fetch('healthz', { cache: 'no-store' });
    setNet(response.ok);
  } catch {
    setNet(false);
  }
}

function viewCanvases() {
  const box = $('views');
  if (box.children.length === 0) {
    model.inputs.forEach((input) => {
      const canvas = document.createElement('canvas');
      [canvas.height, canvas.width] = [input.shape[1] * 5, input.shape[2] * 5];
      canvas.title = input.device_name ?? `device ${input.device}`;
      box.append(canvas);
    });
  }
  return [...box.children];
}

function showImage(image, views, caption) {
  drawGray($('image'), image, spec.size[0], spec.size[1]);
  $('image-caption').textContent = caption;
  viewCanvases().forEach((canvas, d) => {
    const [, h, w] = model.inputs[d].shape;
    drawGray(canvas, views[d], h, w);
  });
}

function showResult(result) {
  const classes = model.classes;
  $('prediction').textContent = result.prediction >= 0 ? classes[result.prediction] : '—';
  const badge = $('exit');
  badge.textContent = result.degraded ? `${result.exit ?? 'no'} exit · degraded` : `${result.exit} exit`;
  badge.className = `badge ${result.degraded ? 'degraded' : result.exit}`;
  const order = result.probs ? [...result.probs.keys()].sort((a, b) => result.probs[b] - result.probs[a]) : [];
  $('top').replaceChildren(...order.slice(0, 3).map((k) => {
    const li = document.createElement('li');
    const pct = (100 * result.probs[k]).toFixed(1);
    li.innerHTML = `<span></span><div class="bar"><i style="width:${pct}%"></i></div><span>${pct}%</span>`;
    li.firstChild.textContent = classes[k];
    return li;
  }));
  $('entropy').textContent = result.entropy === null ? '—' : result.entropy.toFixed(3);
  $('bytes').textContent = `${result.bytes_up} B`;
  $('raw').textContent = `${result.bytes_raw} B`;
  $('timings').replaceChildren(...Object.entries(result.timings_ms).map(([tier, ms]) => {
    const span = document.createElement('span');
    span.textContent = `${tier.replace('_aggregator', ' agg')} ${fmt(ms)}`;
    return span;
  }));
  $('note').textContent = result.degraded ? `Cloud unreachable: local answer shown. ${result.error ?? ''}` : '';
  if (result.degraded) setNet(false);
  else if (result.exit === 'cloud') setNet(true);
}

async function classifyImage(image, caption) {
  const views = cutViews(spec, image);
  showImage(image, views, caption);
  $('prediction').textContent = '…';
  const result = await window.ddnn.classifyViews(views);
  window.ddnn.last = { image, views, result };
  showResult(result);
  return result;
}

async function onPhoto(event) {
  const file = event.target.files?.[0];
  event.target.value = '';
  if (!file) return;
  try {
    const bitmap = await createImageBitmap(file);
    await classifyImage(photoToImage(bitmap, spec), file.name || 'photo');
  } catch (err) {
    $('note').textContent = `Could not read that image: ${err.message}`;
  }
}

async function onRandom() {
  const [h, w] = samples.shape;
  const k = Math.floor(Math.random() * samples.labels.length);
  const image = samples.images.subarray(k * h * w, (k + 1) * h * w);
  const truth = model.classes[samples.labels[k]];
  await classifyImage(image, `test #${samples.indices[k]} · ${truth}`);
}

async function loadSamples(name) {
  const response = await fetch(`samples/${name}.json`);
  if (!response.ok) return null;
  const data = await response.json();
  const bytes = Uint8Array.from(atob(data.images_base64), (c) => c.charCodeAt(0));
  return { ...data, images: bytes };
}

/**
 * Register the service worker and hand it everything this page fetched from its own origin
 * (the runtime's .wasm, the tier binaries), so the app opens and exits locally offline.
 * Resolves to the number of URLs cached.
 */
async function makeOffline() {
  if (!('serviceWorker' in navigator)) throw new Error('no service worker support');
  await navigator.serviceWorker.register('sw.js');
  const registration = await navigator.serviceWorker.ready;
  const urls = performance.getEntriesByType('resource').map((e) => e.name)
    .filter((u) => new URL(u).origin === location.origin && !/\/(v1\/|healthz|readyz)/.test(u));
  const cache = [...new Set([new URL('./', location.href).href, ...urls])];
  const channel = new MessageChannel();
  const done = new Promise((resolve, reject) => {
    channel.port1.onmessage = (event) => (event.data.error ? reject(new Error(event.data.error)) : resolve(event.data.cached));
  });
  registration.active.postMessage({ cache }, [channel.port2]);
  return done;
}

/** The cloud's token: from the URL (the printed link / QR code), kept for the installed app. */
function cloudToken() {
  const token = params.get('token');
  try {
    if (token) localStorage.setItem('ddnn-token', token);
    return token ?? localStorage.getItem('ddnn-token') ?? undefined;
  } catch {
    return token ?? undefined; // storage disabled
  }
}

async function main() {
  const started = performance.now();
  const { ddnn, load } = await loadDdnn({
    modelUrl: params.get('model') ?? 'model/',
    wasmUrl: new URL('vendor/litertjs/wasm/', location.href).href,
    cloudUrl: params.get('cloud') ?? 'v1/cloud',
    modelInfoUrl: 'v1/model',
    cloudTimeoutMs: Number(params.get('cloud_timeout_ms') ?? 5000),
    token: cloudToken(),
    mode: params.get('mode') ?? undefined, // the devices of the demo's gateway, in this protocol
  });
  model = ddnn;
  spec = datasetSpec(model.manifest);
  threshold = model.threshold;
  window.ddnn.model = {
    name: model.manifest.name,
    id: model.modelId,
    classes: model.classes,
    exits: model.exits,
    calibration: model.calibration,
    certified: model.certified,
    mode: model.gateway?.mode ?? null,
  };
  window.ddnn.load = { ...load, total_ms: performance.now() - started };
  $('model-name').textContent = `${model.manifest.name} · on this phone`;
  const slider = $('threshold');
  slider.value = String(threshold);
  slider.disabled = model.gateway !== null; // through a gateway, its T decides
  $('t-value').textContent = threshold.toFixed(2);
  $('t-calibrated').textContent = model.threshold.toFixed(2);
  $('t-rule').textContent = model.calibration ? ` by ${model.calibration}` : '';
  $('t-certified').textContent = model.certified ? ` ${model.certified}` : '';
  slider.addEventListener('input', () => {
    threshold = Number(slider.value);
    $('t-value').textContent = threshold.toFixed(2);
  });
  $('camera').addEventListener('change', onPhoto);
  $('gallery').addEventListener('change', onPhoto);
  const via = model.gateway ? ` · devices of the gateway (${model.gateway.mode} protocol)` : '';
  setStatus(`LiteRT.js ${Math.round(load.runtime_ms)} ms · tiers ${Math.round(load.tiers_ms)} ms · ready${via}`);
  resolveReady(window.ddnn);
  probeCloud();
  samples = await loadSamples(model.manifest.dataset.name).catch(() => null);
  if (samples) {
    $('random').disabled = false;
    $('random').addEventListener('click', onRandom);
  }
  makeOffline().then(resolveOffline, rejectOffline);
  offline.then(() => setStatus(`${$('status').textContent} · works offline`), () => {});
}

// Chrome offers installing the app: show an Install button that triggers its prompt.
window.addEventListener('beforeinstallprompt', (event) => {
  event.preventDefault();
  const button = $('install');
  button.hidden = false;
  button.onclick = async () => {
    button.hidden = true;
    await event.prompt();
  };
});

main().catch((err) => {
  setStatus(`Could not load the model: ${err.message}`);
  rejectReady(err);
  rejectOffline(err);
});
