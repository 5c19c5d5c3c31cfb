// examples/grpc_client.mjs against a real `python -m tablescore serve`: the served model's
// outputs equal the Node scorer's on the same bundle.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { client, infer, waitReady } from '../examples/grpc_client.mjs'
import { load } from '../src/index.mjs'
import { fixture, vecValue } from './fixtures.mjs'

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const PYTHON = process.env.TABLESCORE_PYTHON ||
  (fs.existsSync(path.join(ROOT, '.venv', 'bin', 'python')) ? path.join(ROOT, '.venv', 'bin', 'python') : 'python3')

const freePort = () => new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)) })
})

test('gRPC client example scores through tablescore serve', { timeout: 180000 }, async () => {
  const repo = fs.mkdtempSync(path.join(os.tmpdir(), 'tablescore-node-grpc-'))
  const models = { lr: 'LogisticRegression-breast_cancer', xgb: 'XGBoost-AuditNA' }
  for (const [name, b] of Object.entries(models)) fs.cpSync(fixture('bundles', b), path.join(repo, name, '1'), { recursive: true })
  const port = await freePort()
  const server = spawn(PYTHON, ['-m', 'tablescore', 'serve', '--repository', repo, '--port', String(port)], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  server.stderr.on('data', (d) => { stderr += d })
  let exited = null
  const exit = new Promise((resolve) => server.once('exit', (code) => { exited = code; resolve() }))
  const c = client(`127.0.0.1:${port}`)
  try {
    for (const [name, b] of Object.entries(models)) {
      await Promise.race([waitReady(c, name, 150000), exit.then(() => { throw new Error(`server exited (${exited})`) })])
        .catch((e) => { throw new Error(`${e.message}\n${stderr.slice(-2000)}`) })
      const model = await load(fixture('bundles', b))
      const vec = JSON.parse(fs.readFileSync(fixture('vectors', b, 'vectors.json'), 'utf8'))
      const cols = Object.fromEntries(model.inputs.map((f) => [f.name, vec.rows.map((r) => vecValue(r.inputs[f.name]))]))
      const remote = await infer(c, name, cols)
      const local = model.scoreColumns(cols)
      assert.deepEqual(Object.keys(remote).sort(), Object.keys(local).sort())
      for (const [k, vals] of Object.entries(local)) {
        vals.forEach((v, i) => {
          if (typeof v === 'number') assert.ok(Object.is(v, remote[k][i]) || (v !== v && remote[k][i] !== remote[k][i]), `${name} row ${i} ${k}: ${v} != ${remote[k][i]}`)
          else assert.equal(String(remote[k][i]), String(v), `${name} row ${i} ${k}`)
        })
      }
    }
  } finally {
    c.close()
    if (exited === null) server.kill('SIGTERM')
    await exit
    fs.rmSync(repo, { recursive: true, force: true })
  }
})
