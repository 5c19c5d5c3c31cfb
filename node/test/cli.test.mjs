// The command line writes the same CSV as `tablescore score`: the same columns, and every value
// the same (numbers compared as doubles, bit for bit; the two writers may spell them apart).
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { fixture, INDEX } from './fixtures.mjs'

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'tablescore.mjs')

// cells of a CSV the writers produce here (no embedded commas or newlines), unquoted
const cells = (line) => line.split(',').map((c) => (c.length >= 2 && c.startsWith('"') && c.endsWith('"') ? c.slice(1, -1) : c))

function assertSameCsv (got, want, name) {
  const g = got.trimEnd().split('\n')
  const w = want.trimEnd().split('\n')
  assert.equal(g.length, w.length, `${name}: rows`)
  assert.deepEqual(cells(g[0]), cells(w[0]), `${name}: columns`)
  for (let i = 1; i < w.length; i++) {
    const gc = cells(g[i])
    const wc = cells(w[i])
    assert.equal(gc.length, wc.length, `${name}: row ${i}`)
    for (let j = 0; j < wc.length; j++) {
      const gn = Number(gc[j])
      const wn = Number(wc[j])
      if (wc[j] !== '' && gc[j] !== '' && !Number.isNaN(wn) && !Number.isNaN(gn)) {
        assert.ok(Object.is(gn, wn), `${name}: row ${i}, column ${j}: ${gc[j]} != ${wc[j]}`)
      } else {
        assert.equal(gc[j], wc[j], `${name}: row ${i}, column ${j}`)
      }
    }
  }
}

test('node tablescore.mjs score == tablescore score (every fixture bundle)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tablescore-node-cli-'))
  try {
    for (const b of INDEX.bundles) {
      const out = path.join(dir, `${b.name}.csv`)
      execFileSync(process.execPath, [BIN, 'score', fixture(b.bundle), '--data', fixture(b.vectors, 'inputs.csv'), '--out', out])
      assertSameCsv(fs.readFileSync(out, 'utf8'), fs.readFileSync(fixture(b.vectors, 'python_score.csv'), 'utf8'), b.name)
    }
  } finally { fs.rmSync(dir, { recursive: true, force: true }) }
})

test('a refused bundle is exit 3 with one line', () => {
  const r = spawnSync(process.execPath, [BIN, 'score', fixture('refuse', 'tampered_table'), '--data', 'x.csv', '--out', 'y.csv'], { encoding: 'utf8' })
  assert.equal(r.status, 3)
  assert.match(r.stderr, /^tablescore: table '.*' does not match its sha256/)
})

test('bad usage is exit 2', () => {
  const r = spawnSync(process.execPath, [BIN, 'score', 'b'], { encoding: 'utf8' })
  assert.equal(r.status, 2)
})
