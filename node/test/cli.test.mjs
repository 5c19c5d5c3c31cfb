// The command line writes the same CSV as `tablescore score`: the same columns, and every value
// the same (numbers compared as doubles, bit for bit; the two writers may spell them apart).
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { cellValue, parseCsv } from '../src/csv.mjs'
import { InputError } from '../src/errors.mjs'
import { numberFromText } from '../src/model.mjs'
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

test('CSV text is read as Arrow and tablescore score read it', () => {
  // a quote opens a quoted cell only at the cell's start: 8" is a cell, the rows stay
  assert.deepEqual(parseCsv('a,b\n1,8"\n2,x\n').rows, [['1', '8"'], ['2', 'x']])
  assert.deepEqual(parseCsv('\ufeffa,b\r\n1,"x\ny"\r\n').rows, [['1', 'x\ny']]) // BOM, CRLF, quoted break
  assert.throws(() => parseCsv('a,b\n1,2,3\n'), (e) => e instanceof InputError && /row 1: ragged line: 3 fields/.test(e.message))
  assert.throws(() => parseCsv('a,b\n1\n'), /ragged line: 1 fields/)
  assert.throws(() => parseCsv('a,b,b\n1,2,3\n'), /'b' appears more than once/)
  assert.throws(() => parseCsv(''), (e) => e instanceof InputError && /empty/.test(e.message))
  // a string field's cell is its text ("08" is not category "8"); a number's, xs:double
  assert.equal(cellValue('08', { type: 'string', categories: ['8'] }), '08')
  assert.throws(() => numberFromText('inf', 'x'), /xs:double/)
  assert.equal(numberFromText('INF', 'x'), Infinity)
  assert.ok(Number.isNaN(numberFromText('nan', 'x'))) // a missing marker
})

test('the command line refuses what tablescore score refuses, exit 2', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tablescore-node-csv-'))
  try {
    const b = fixture('bundles', 'LogisticRegression-breast_cancer')
    const cases = {
      'ragged.csv': ['x0,x1\n1,2,3\n', /ragged line/],
      'empty.csv': ['', /empty/],
      'latin1.csv': [Buffer.from([0x61, 0x0a, 0xe9, 0x0a]), /not UTF-8 text \(byte 0xe9 at offset 2\)/]
    }
    for (const [name, [text, why]] of Object.entries(cases)) {
      fs.writeFileSync(path.join(dir, name), text)
      const r = spawnSync(process.execPath, [BIN, 'score', b, '--data', path.join(dir, name), '--out', path.join(dir, 'o.csv')], { encoding: 'utf8' })
      assert.equal(r.status, 2, `${name}: ${r.stderr}`)
      assert.match(r.stderr, why)
      assert.equal(r.stderr.trim().split('\n').length, 1, name)
    }
    // an output in a directory that does not exist yet, with an upper-case extension
    const data = path.join(dir, 'ok.csv')
    fs.copyFileSync(fixture(INDEX.bundles.find((x) => x.name === 'LogisticRegression-breast_cancer').vectors, 'inputs.csv'), data)
    const out = path.join(dir, 'new', 'O.CSV')
    const r = spawnSync(process.execPath, [BIN, 'score', b, '--data', data, '--out', out], { encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    assert.ok(fs.existsSync(out))
  } finally { fs.rmSync(dir, { recursive: true, force: true }) }
})
