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

function median(values) {
  const sorted = Float32Array.from(values).sort();
  return sorted[sorted.length >> 1];
}

/**
 * A photo as the data set's images look: grayscale, object bright on a dark background,
 * cropped to the object, its longer side scaled to the image size, centred.
 * @param {CanvasImageSource} source an <img>, ImageBitmap or canvas
 * @param {object} spec datasetSpec(...)
 * @returns {Uint8Array} h*w uint8 pixels
 */
export function photoToImage(source, spec) {
  const [h, w] = spec.size;
  const sw = source.naturalWidth ?? source.width;
  const sh = source.naturalHeight ?? source.height;
  const fit = Math.min(1, 256 / Math.max(sw, sh)); // work on a small copy
  const cw = Math.max(1, Math.round(sw * fit));
  const ch = Math.max(1, Math.round(sh * fit));
  const work = new OffscreenCanvas(cw, ch);
  const ctx = work.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(source, 0, 0, cw, ch);
  const rgba = ctx.getImageData(0, 0, cw, ch).data;
  const gray = new Float32Array(cw * ch);
  for (let i = 0; i < gray.length; i += 1) {
    gray[i] = 0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2];
  }
  // background = the border's median; make the object bright on dark
  const border = [];
  for (let x = 0; x < cw; x += 1) border.push(gray[x], gray[(ch - 1) * cw + x]);
  for (let y = 0; y < ch; y += 1) border.push(gray[y * cw], gray[y * cw + cw - 1]);
  const background = median(border);
  const invert = background > 127;
  let peak = 0;
  for (let i = 0; i < gray.length; i += 1) {
    const v = invert ? background - gray[i] : gray[i] - background;
    gray[i] = Math.max(0, v);
    peak = Math.max(peak, gray[i]);
  }
  // the object's bounding box: pixels well above the background
  let [x0, y0, x1, y1] = [cw, ch, -1, -1];
  const cut = peak * 0.2;
  for (let y = 0; y < ch; y += 1) {
    for (let x = 0; x < cw; x += 1) {
      if (gray[y * cw + x] > cut) {
        x0 = Math.min(x0, x); x1 = Math.max(x1, x);
        y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      }
    }
  }
  if (x1 < 0) [x0, y0, x1, y1] = [0, 0, cw - 1, ch - 1];
  const boxW = x1 - x0 + 1;
  const boxH = y1 - y0 + 1;
  const stretched = new ImageData(cw, ch);
  for (let i = 0; i < gray.length; i += 1) {
    const v = peak > 0 ? Math.round((255 * gray[i]) / peak) : 0;
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
