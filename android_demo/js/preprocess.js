// Preprocessing: from a photo (or a data set image) to the raw uint8 views the device
// tiers take. This is the one place that knows how a data set's images were made; the view
// sizes themselves come from the manifest's inputs.

/**
 * Per data set: the image size the model was trained on, how it is padded, and the grid of
 * device views (device index = row * cols + col).
 */
export const DATASETS = {
  fmnist6: { size: [28, 28], padTop: 1, padBottom: 1, grid: [3, 2] },
};

export function datasetSpec(manifest) {
  const name = manifest.dataset?.name;
  const spec = DATASETS[name];
  if (!spec) throw new Error(`preprocess: no preprocessing for data set ${JSON.stringify(name)}`);
  const [rows, cols] = spec.grid;
  const [h, w] = spec.size;
  const ph = (h + spec.padTop + spec.padBottom) / rows;
  const pw = w / cols;
  manifest.inputs.forEach((input) => {
    const [, ih, iw] = input.shape;
    if (ih !== ph || iw !== pw) {
      throw new Error(`preprocess: ${name} views are ${ph}x${pw}, manifest inputs[${input.device}] is ${ih}x${iw}`);
    }
  });
  if (manifest.inputs.length !== rows * cols) throw new Error(`preprocess: ${name} has ${rows * cols} views, manifest ${manifest.inputs.length}`);
  return { ...spec, viewSize: [ph, pw] };
}

/** Cut an image (uint8, h*w, row-major) into the device views, padding as the data set did. */
export function cutViews(spec, image) {
  const [h, w] = spec.size;
  const [rows, cols] = spec.grid;
  const [ph, pw] = spec.viewSize;
  const padded = new Uint8Array((h + spec.padTop + spec.padBottom) * w);
  padded.set(image, spec.padTop * w);
  const views = [];
  for (let r = 0; r < rows; r += 1) {
    for (let c = 0; c < cols; c += 1) {
      const view = new Uint8Array(ph * pw);
      for (let y = 0; y < ph; y += 1) {
        const src = (r * ph + y) * w + c * pw;
        view.set(padded.subarray(src, src + pw), y * pw);
      }
      views.push(view);
    }
  }
  return views;
}

function percentile(values, q) {
  const sorted = Float32Array.from(values).sort();
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : 0;
}

/** Least-squares plane a + b*x + c*y through points [x, y, v] (Cramer's rule). */
function fitPlane(points) {
  let [n, sx, sy, sxx, syy, sxy, sv, sxv, syv] = [0, 0, 0, 0, 0, 0, 0, 0, 0];
  for (const [x, y, v] of points) {
    n += 1; sx += x; sy += y; sxx += x * x; syy += y * y; sxy += x * y;
    sv += v; sxv += x * v; syv += y * v;
  }
  const det3 = (m) => m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6])
    + m[2] * (m[3] * m[7] - m[4] * m[6]);
  const m = [n, sx, sy, sx, sxx, sxy, sy, sxy, syy];
  const d = det3(m);
  if (Math.abs(d) < 1e-9) return [sv / Math.max(n, 1), 0, 0];
  return [
    det3([sv, sx, sy, sxv, sxx, sxy, syv, sxy, syy]) / d,
    det3([n, sv, sy, sx, sxv, sxy, sy, syv, syy]) / d,
    det3([n, sx, sv, sx, sxx, sxv, sy, sxy, syv]) / d,
  ];
}

/**
 * A photo as the data set's images look: grayscale, object bright on a black background,
 * cropped to the object, its longer side scaled to the image size, centred.
 *
 * The background is a plane fitted to the photo's border (so an even lighting gradient
 * goes away); a light background is inverted; pixels within the border's noise become 0.
 * @param {CanvasImageSource} source an <img>, ImageBitmap or canvas
 * @param {object} spec datasetSpec(...)
 * @returns {Uint8Array} h*w uint8 pixels
 */
export function photoToImage(source, spec) {
  const [h, w] = spec.size;
  const sw = source.naturalWidth ?? source.width;
  const sh = source.naturalHeight ?? source.height;
  const fit = Math.min(1, 256 / Math.max(sw, sh)); // work on a small copy
  const cw = Math.max(3, Math.round(sw * fit));
  const ch = Math.max(3, Math.round(sh * fit));
  const work = new OffscreenCanvas(cw, ch);
  const ctx = work.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(source, 0, 0, cw, ch);
  const rgba = ctx.getImageData(0, 0, cw, ch).data;
  const gray = new Float32Array(cw * ch);
  for (let i = 0; i < gray.length; i += 1) {
    gray[i] = 0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2];
  }
  // background: a plane through the border pixels, refitted without the outliers (an
  // object touching the border)
  let border = [];
  for (let y = 0; y < ch; y += 1) {
    for (let x = 0; x < cw; x += 1) {
      if (x < 2 || y < 2 || x >= cw - 2 || y >= ch - 2) border.push([x, y, gray[y * cw + x]]);
    }
  }
  let plane = fitPlane(border);
  const residual = ([x, y, v]) => v - (plane[0] + plane[1] * x + plane[2] * y);
  let spread = 1.4826 * percentile(border.map((p) => Math.abs(residual(p))), 0.5);
  border = border.filter((p) => Math.abs(residual(p)) <= 3 * spread + 1);
  plane = fitPlane(border);
  spread = Math.max(1, 1.4826 * percentile(border.map((p) => Math.abs(residual(p))), 0.5));
  const invert = plane[0] + (plane[1] * cw) / 2 + (plane[2] * ch) / 2 > 127;
  const level = new Float32Array(cw * ch); // how far each pixel stands out, object-side
  for (let y = 0; y < ch; y += 1) {
    for (let x = 0; x < cw; x += 1) {
      const r = residual([x, y, gray[y * cw + x]]);
      level[y * cw + x] = Math.max(0, invert ? -r : r);
    }
  }
  // the object's box: smoothed levels well above the noise, robust to stray pixels
  const smooth = new Float32Array(cw * ch);
  for (let y = 1; y < ch - 1; y += 1) {
    for (let x = 1; x < cw - 1; x += 1) {
      let sum = 0;
      for (let dy = -1; dy <= 1; dy += 1) for (let dx = -1; dx <= 1; dx += 1) sum += level[(y + dy) * cw + x + dx];
      smooth[y * cw + x] = sum / 9;
    }
  }
  const cut = Math.max(3 * spread, 0.2 * percentile(smooth, 0.99));
  const xs = [];
  const ys = [];
  for (let y = 0; y < ch; y += 1) {
    for (let x = 0; x < cw; x += 1) {
      if (smooth[y * cw + x] > cut) {
        xs.push(x);
        ys.push(y);
      }
    }
  }
  let [x0, y0, x1, y1] = [0, 0, cw - 1, ch - 1];
  if (xs.length) {
    [x0, x1] = [percentile(xs, 0.002), percentile(xs, 0.998)];
    [y0, y1] = [percentile(ys, 0.002), percentile(ys, 0.998)];
  }
  const boxW = x1 - x0 + 1;
  const boxH = y1 - y0 + 1;
  const inBox = [];
  for (let y = y0; y <= y1; y += 1) for (let x = x0; x <= x1; x += 1) inBox.push(level[y * cw + x]);
  const floor = 2 * spread;
  const peak = Math.max(floor + 1, percentile(inBox, 0.995));
  const stretched = new ImageData(cw, ch);
  for (let i = 0; i < level.length; i += 1) {
    const v = Math.round(255 * Math.min(1, Math.max(0, (level[i] - floor) / (peak - floor))));
    stretched.data.set([v, v, v, 255], 4 * i);
  }
  ctx.putImageData(stretched, 0, 0);
  const out = new OffscreenCanvas(w, h);
  const octx = out.getContext('2d', { willReadFrequently: true });
  octx.fillStyle = '#000';
  octx.fillRect(0, 0, w, h);
  octx.imageSmoothingQuality = 'high';
  const s = Math.min(w / boxW, h / boxH);
  const dw = boxW * s;
  const dh = boxH * s;
  octx.drawImage(work, x0, y0, boxW, boxH, (w - dw) / 2, (h - dh) / 2, dw, dh);
  const px = octx.getImageData(0, 0, w, h).data;
  return Uint8Array.from({ length: w * h }, (_, i) => px[4 * i]);
}

/** Draw uint8 grayscale pixels (h*w) onto a canvas, scaled up without smoothing. */
export function drawGray(canvas, pixels, h, w) {
  const tmp = new OffscreenCanvas(w, h);
  const img = new ImageData(w, h);
  for (let i = 0; i < h * w; i += 1) img.data.set([pixels[i], pixels[i], pixels[i], 255], 4 * i);
  tmp.getContext('2d').putImageData(img, 0, 0);
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
}
