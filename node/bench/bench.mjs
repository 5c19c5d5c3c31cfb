// Node scorer timings for one bundle: node bench/bench.mjs BUNDLE X.f64 N_FEATURES
// (X.f64: row-major float64, little-endian). Prints JSON: load ms, single-row µs (median of
// predict({field: value}) and of scoreMatrix on one row), rows/s over all rows of X.
import fs from 'node:fs'
import { load } from '../src/index.mjs'

const [bundle, xPath, nfText] = process.argv.slice(2)
const nf = Number(nfText)
const buf = fs.readFileSync(xPath)
const X = new Float64Array(buf.buffer, buf.byteOffset, buf.byteLength / 8)
const n = X.length / nf
let t0 = performance.now()
const model = await load(bundle)
const loadMs = performance.now() - t0
const names = model.inputNames
const median = (a) => a.sort((p, q) => p - q)[a.length >> 1]

function single (fn, reps = 5000) {
  for (let i = 0; i < 500; i++) fn(i % n) // warm up the JIT
  const times = []
  for (let i = 0; i < reps; i++) {
    const s = process.hrtime.bigint(); fn(i % n); times.push(Number(process.hrtime.bigint() - s) / 1000)
  }
  return median(times)
}
const rowObj = (i) => Object.fromEntries(names.map((f, j) => [f, X[i * nf + j]]))
const objs = Array.from({ length: Math.min(n, 5000) }, (_, i) => rowObj(i))
const predictUs = single((i) => model.predict(objs[i % objs.length]))
const matrixUs = single((i) => model.scoreMatrix(X.subarray(i * nf, (i + 1) * nf), 1))
model.scoreMatrix(X.subarray(0, 1000 * nf), 1000) // warm
const runs = []
for (let r = 0; r < 3; r++) { t0 = performance.now(); model.scoreMatrix(X, n); runs.push(performance.now() - t0) }
console.log(JSON.stringify({ load_ms: loadMs, single_row_predict_us: predictUs, single_row_matrix_us: matrixUs, batch_rows: n, batch_rows_per_s: n / (median(runs) / 1000) }))
