#!/usr/bin/env node
// gRPC client for a running `tablescore serve` (Open Inference Protocol v2,
// protos/inference.proto), with @grpc/grpc-js and @grpc/proto-loader.
//
//   tablescore serve --repository models --port 8001        # models/<name>/<version>/<bundle>
//   node node/examples/grpc_client.mjs 127.0.0.1:8001 MODEL IN.csv
//
// Sends one tensor per input column (FP64, or BYTES for string fields; missing = NaN / empty
// bytes) and prints the output columns as CSV.
import grpc from '@grpc/grpc-js'
import protoLoader from '@grpc/proto-loader'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const PROTO = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'protos', 'inference.proto')

/** A GRPCInferenceService client for endpoint "host:port" (insecure channel). */
export function client (endpoint, protoPath = PROTO) {
  const def = protoLoader.loadSync(protoPath, { keepCase: true, longs: Number, enums: String, defaults: true })
  const { inference } = grpc.loadPackageDefinition(def)
  return new inference.GRPCInferenceService(endpoint, grpc.credentials.createInsecure())
}

const call = (c, method, req, timeoutMs = 60000) => new Promise((resolve, reject) =>
  c[method](req, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res))))

/** Wait until the server says the model is ready (or throw after timeoutMs). */
export async function waitReady (c, model, timeoutMs = 60000) {
  const t0 = Date.now()
  for (;;) {
    try { if ((await call(c, 'ModelReady', { name: model }, 5000)).ready) return } catch {}
    if (Date.now() - t0 > timeoutMs) throw new Error(`model '${model}' not ready after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

function bytesTensor (items) { // BYTES: 4-byte little-endian length, then the bytes
  const parts = items.map((s) => Buffer.from(s ?? '', 'utf8'))
  const out = Buffer.alloc(parts.reduce((n, p) => n + 4 + p.length, 0))
  let o = 0
  for (const p of parts) { out.writeUInt32LE(p.length, o); p.copy(out, o + 4); o += 4 + p.length }
  return out
}

function decode (t, raw) {
  const n = t.shape.reduce((a, b) => a * Number(b), 1)
  const b = Buffer.from(raw)
  const read = { FP64: (i) => b.readDoubleLE(8 * i), FP32: (i) => b.readFloatLE(4 * i), INT64: (i) => Number(b.readBigInt64LE(8 * i)), INT32: (i) => b.readInt32LE(4 * i), BOOL: (i) => b[i] !== 0 }[t.datatype]
  if (read) return Array.from({ length: n }, (_, i) => read(i))
  if (t.datatype !== 'BYTES') throw new Error(`output '${t.name}': datatype ${t.datatype} not handled here`)
  const out = []
  for (let o = 0; o < b.length;) { const len = b.readUInt32LE(o); out.push(b.toString('utf8', o + 4, o + 4 + len)); o += 4 + len }
  return out
}

/** Score columns {field: values} (numbers / null, or strings for string fields) with the
 * served model; returns {output name: values}. `meta`: ModelMetadata (fetched if absent). */
export async function infer (c, model, columns, meta = null) {
  meta = meta || await call(c, 'ModelMetadata', { name: model })
  const req = { model_name: model, inputs: [], raw_input_contents: [] }
  for (const inp of meta.inputs) {
    const values = columns[inp.name]
    if (inp.datatype === 'BYTES') {
      req.inputs.push({ name: inp.name, datatype: 'BYTES', shape: [values.length] })
      req.raw_input_contents.push(bytesTensor(values.map((v) => (v === null || v === undefined ? '' : String(v)))))
    } else {
      const buf = Buffer.alloc(8 * values.length)
      values.forEach((v, i) => buf.writeDoubleLE(v === null || v === undefined ? NaN : Number(v), 8 * i))
      req.inputs.push({ name: inp.name, datatype: 'FP64', shape: [values.length] })
      req.raw_input_contents.push(buf)
    }
  }
  const res = await call(c, 'ModelInfer', req)
  return Object.fromEntries(res.outputs.map((t, i) => [t.name, decode(t, res.raw_output_contents[i])]))
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [endpoint, model, csvPath] = process.argv.slice(2)
  if (!csvPath) { console.error('usage: grpc_client.mjs HOST:PORT MODEL IN.csv'); process.exit(2) }
  const { parseCsv } = await import('../src/csv.mjs')
  const { header, rows } = parseCsv(fs.readFileSync(csvPath, 'utf8'))
  const c = client(endpoint)
  await waitReady(c, model)
  const meta = await call(c, 'ModelMetadata', { name: model })
  const cols = {}
  for (const inp of meta.inputs) {
    const j = header.indexOf(inp.name)
    cols[inp.name] = rows.map((r) => (r[j] === '' || r[j] === 'NA' || r[j] === 'N/A' ? null : (inp.datatype === 'BYTES' ? r[j] : Number(r[j]))))
  }
  const out = await infer(c, model, cols, meta)
  const names = Object.keys(out)
  console.log(names.join(','))
  for (let i = 0; i < rows.length; i++) console.log(names.map((n) => out[n][i] ?? '').join(','))
  c.close()
}
