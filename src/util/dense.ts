// Row-major helpers the layers of every trainer share (stage-1 heads, downstream classifiers):
// the cheap elementwise parts around the backend's matmul.

/** y[r, :] += bias for every one of `rows` rows. */
export function addBias(y: Float32Array, bias: Float32Array, rows: number): void {
  const n = bias.length;
  for (let r = 0, o = 0; r < rows; r++, o += n) for (let j = 0; j < n; j++) y[o + j] += bias[j];
}

/** out[j] = Σ_r g[r, j] (float64 accumulation): a bias gradient. */
export function columnSums(g: Float32Array, rows: number, cols: number, out: Float32Array): void {
  const acc = new Float64Array(cols);
  for (let r = 0, o = 0; r < rows; r++, o += cols) for (let j = 0; j < cols; j++) acc[j] += g[o + j];
  for (let j = 0; j < cols; j++) out[j] = acc[j];
}

/** Transposes a rows × cols row-major matrix. */
export function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c];
  return out;
}
