// The command line writes the same CSV, byte for byte, as `tablescore score`.
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { fixture, INDEX } from './fixtures.mjs'

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'tablescore.mjs')

test('node tablescore.mjs score == tablescore score (every fixture bundle)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tablescore-node-cli-'))
  try {
    for (const b of INDEX.bundles) {
      const out = path.join(dir, `${b.name}.csv`)
      execFileSync(process.execPath, [BIN, 'score', fixture(b.bundle), '--data', fixture(b.vectors, 'inputs.csv'), '--out', out])
      assert.equal(fs.readFileSync(out, 'utf8'), fs.readFileSync(fixture(b.vectors, 'python_score.csv'), 'utf8'), b.name)
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
