// The page as the end devices of a gateway. `ddnn serve demo --mode paper|eager` serves one
// under gateway/ and prints the page's URL with ?mode=...: each of the model's devices then
// joins it, and per sample (a round of one) sends its encoded summary and, in the eager
// protocol, its packed features in the same message; in the paper protocol it sends its
// features when the gateway's decision asks for them. The gateway runs the local exit and
// forwards to the cloud; the answer is its own. The messages are specified in
// docs/protocol.md ("Devices and the gateway", "The eager protocol").

export const MODES = ['paper', 'eager'];
const SUMMARY_TYPE = 'application/vnd.ddnn.summary';
const FEATURES_TYPE = 'application/vnd.ddnn.features';

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((offset, p) => (out.set(p, offset), offset + p.length), 0);
  return out;
}

export class GatewayLink {
  /**
   * @param {object} options {url (the gateway's base URL), modelId, token, mode, timeoutMs}
   */
  constructor(options) {
    if (!MODES.includes(options.mode)) {
      throw new Error(`mode: expected one of ${MODES.join(', ')}, got ${JSON.stringify(options.mode)}`);
    }
    this.url = options.url.endsWith('/') ? options.url : `${options.url}/`;
    this.modelId = options.modelId ?? '';
    this.token = options.token;
    this.mode = options.mode;
    this.timeoutMs = options.timeoutMs;
    this.next = null; // the next round's start: a sample number of the gateway's stream
  }

  async request(path, { device = null, start = null, type = null, body = null } = {}) {
    const headers = { 'X-DDNN-Model': this.modelId };
    if (device !== null) headers['X-DDNN-Device'] = String(device);
    if (start !== null) headers['X-DDNN-Start'] = String(start);
    if (type !== null) headers['Content-Type'] = type;
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    try {
      const response = await fetch(new URL(path, this.url), {
        method: body === null ? 'GET' : 'POST', headers, body, signal: controller.signal, cache: 'no-store',
      });
      if (!response.ok) {
        const answer = await response.json().catch(() => null);
        const why = answer?.error ? `${answer.error.code}: ${answer.error.message}` : `HTTP ${response.status}`;
        throw new Error(`gateway ${path}: ${why}`);
      }
      return response;
    } catch (err) {
      if (err.name === 'AbortError') throw new Error(`gateway ${path}: no answer within ${this.timeoutMs} ms`);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Every device joins (the gateway holds the answers until all have); then the next sample number. */
  async join(devices) {
    const answers = await Promise.all(devices.map(
      (device) => this.request('v1/join', { device, body: new Uint8Array() }).then((r) => r.json()),
    ));
    for (const answer of answers) {
      if (answer.mode !== this.mode) {
        throw new Error(`mode: the gateway runs the ${answer.mode} protocol, this page ${this.mode}`);
      }
      if (answer.batch !== 1) throw new Error(`the gateway's rounds have ${answer.batch} samples; the page sends one at a time`);
    }
    this.next = (await (await this.request('v1/progress')).json()).answered;
  }

  /**
   * One sample through the gateway.
   * @param {Array<{device: number, summary: Uint8Array, features: Uint8Array}>} messages the present devices'
   * @returns {Promise<{exit: string, prediction: number, degraded: boolean, bytesUp: number}>}
   *   the gateway's answer, and the feature bytes the devices sent
   */
  async round(messages) {
    const start = this.next;
    this.next += 1;
    let bytesUp = 0;
    const post = (kind, m, body, type) => this.request(`v1/${kind}`, { device: m.device, start, type, body });
    if (this.mode === 'eager') {
      await Promise.all(messages.map((m) => post('summary', m, concat([m.summary, m.features]), SUMMARY_TYPE)));
      bytesUp = messages.reduce((n, m) => n + m.features.length, 0);
    } else {
      const masks = await Promise.all(messages.map(async (m) => new Uint8Array(
        await (await post('summary', m, m.summary, SUMMARY_TYPE)).arrayBuffer(),
      )));
      const asked = messages.filter((m, k) => masks[k][0] & 0x80); // bit 0: "send your features"
      await Promise.all(asked.map((m) => post('features', m, m.features, FEATURES_TYPE)));
      bytesUp = asked.reduce((n, m) => n + m.features.length, 0);
    }
    const answers = await (await this.request('v1/results')).json();
    const row = answers.results.find((r) => r[0] === start);
    if (!row) throw new Error(`gateway: no answer for sample ${start}`);
    return { exit: answers.exits[row[1]], prediction: row[2], degraded: row[3], bytesUp };
  }
}
