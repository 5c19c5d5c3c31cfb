// Integer class labels a double cannot hold (2^53 and 2^53 + 1 are one double): the Node
// scorer returns them exact (BigInt), as Python's int, and writes the CSV Python writes.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { parseCsv } from '../src/csv.mjs'
import { load } from '../src/index.mjs'
import { fixture, INDEX } from './fixtures.mjs'

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'tablescore.mjs')
const E = INDEX.exact_labels

test('integer classes beyond 2^53 are exact BigInts, and verification tells them apart', async () => {
  const model = await load(fixture(E.bundle)) // its verification rows hold both classes
  const label = model.outputs.find((o) => o.kind === 'label')
  assert.deepEqual(label.classes, [2n ** 53n, 2n ** 53n + 1n])
  const { header, rows } = parseCsv(fs.readFileSync(fixture(E.inputs), 'utf8'))
  const cols = Object.fromEntries(header.map((h, j) => [h, rows.map((r) => Number(r[j]))]))
  const got = model.scoreColumns(cols)[label.name]
  const want = parseCsv(fs.readFileSync(fixture(E.python_score), 'utf8'))
  const k = want.header.indexOf(label.name)
  assert.deepEqual(got.map(String), want.rows.map((r) => r[k]))
  assert.deepEqual(new Set(got), new Set(label.classes)) // both classes occur
})

test('the command line writes both classes as Python does', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tablescore-node-labels-'))
  try {
    const out = path.join(dir, 'out.csv')
    execFileSync(process.execPath, [BIN, 'score', fixture(E.bundle), '--data', fixture(E.inputs), '--out', out])
    const got = parseCsv(fs.readFileSync(out, 'utf8'))
    const want = parseCsv(fs.readFileSync(fixture(E.python_score), 'utf8'))
    assert.deepEqual(got.header, want.header)
    const k = want.header.indexOf('label')
    assert.ok(k >= 0)
    assert.deepEqual(got.rows.map((r) => r[k]), want.rows.map((r) => r[k]))
  } finally { fs.rmSync(dir, { recursive: true, force: true }) }
})
