// Service worker: keeps the app, the WebAssembly runtime and the device/aggregator binaries
// so that the page opens and exits locally with no network. Network first (a fresh model
// when the server is there), the cache when it is not. The cloud API is never cached.

const CACHE = 'ddnn-app-v1';
const SHELL = [
  './', 'index.html', 'style.css', 'app.webmanifest', 'icons/icon-192.png', 'icons/icon-512.png',
  'js/main.js', 'js/ddnn.js', 'js/exits.js', 'js/wire.js', 'js/preprocess.js', 'js/gateway.js',
  'vendor/litertjs/core/index.js', 'vendor/litertjs/wasm-utils/index.js', 'model/manifest.json',
];
const API = /\/(v1\/|healthz|readyz)/;

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

// The page sends the URLs it loaded (the runtime's .wasm, the tier binaries) once it is ready.
self.addEventListener('message', (event) => {
  const urls = (event.data?.cache ?? []).filter((u) => new URL(u).origin === location.origin && !API.test(u));
  const reply = (message) => event.ports[0]?.postMessage(message);
  event.waitUntil(
    caches.open(CACHE)
      .then((cache) => cache.addAll(urls))
      .then(() => reply({ cached: urls.length }), (err) => reply({ error: String(err) })),
  );
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== location.origin || API.test(url.pathname)) return;
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(event.request, copy));
        }
        return response;
      })
      .catch(() => caches.match(event.request, { ignoreSearch: true })
        .then((hit) => hit ?? Response.error())),
  );
});
