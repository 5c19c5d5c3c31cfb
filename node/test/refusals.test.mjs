// Bundles a reader must refuse (bundle-format §4), and canonical JSON / fingerprints
// reproduced from Python's scorer.bundle.canonical_json.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { canonical, IncompatibleBundleError, IntegrityError, load, parseTyped, pyFloatRepr } from '../src/index.mjs'
import { fixture, INDEX } from './fixtures.mjs'

const refuse = (name) => load(fixture('refuse', name))

test('a tampered table is refused', async () => {
  await assert.rejects(refuse('tampered_table'), (e) => e instanceof IntegrityError && /does not match its sha256 in the manifest/.test(e.message))
  assert.match(INDEX.refusals.tampered_table, /IntegrityError/) // and Python refuses it too
})

test('an unknown op is refused by name', async () => {
  await assert.rejects(refuse('unknown_op'), (e) => e instanceof IncompatibleBundleError && /op 'frobnicate' unknown/.test(e.message))
})

test('an unknown op version is refused naming op and version', async () => {
  await assert.rejects(refuse('unknown_op_version'), (e) => e instanceof IncompatibleBundleError && /op 'link' version 99 unknown/.test(e.message))
})

test('a newer major schema version is refused', async () => {
  await assert.rejects(refuse('newer_major'), (e) => e instanceof IncompatibleBundleError && e.message.startsWith('bundle schema 2.0 is newer than this scorer (reads 1.x)'))
})

test('an edited manifest is refused (fingerprint)', async () => {
  await assert.rejects(refuse('edited_manifest'), (e) => e instanceof IntegrityError && /fingerprint mismatch/.test(e.message))
})

test('a newer minor version with unknown keys loads, as in Python', async () => {
  assert.equal(INDEX.refusals.newer_minor, '')
  const m = await refuse('newer_minor')
  assert.ok(m.verify() > 0)
})

test('canonical JSON and fingerprints equal Python\'s', () => {
  assert.ok(INDEX.canonical.length >= 4)
  for (const probe of INDEX.canonical) {
    const text = canonical(parseTyped(probe.text))
    assert.equal(text, probe.canonical)
    assert.equal(createHash('sha256').update(text, 'utf8').digest('hex'), probe.sha256)
  }
})

test('NaN / Infinity literals are not JSON', () => {
  assert.throws(() => parseTyped('{"a": NaN}'), /not JSON values/)
  assert.throws(() => parseTyped('[-Infinity]'), /not JSON values/)
})

test('floats format as Python repr', () => {
  const cases = [[1, '1.0'], [1e-5, '1e-05'], [1e-4, '0.0001'], [1e16, '1e+16'], [123456789012345.6, '123456789012345.6'],
    [-0, '-0.0'], [5e-324, '5e-324'], [0.1, '0.1'], [1.7976931348623157e308, '1.7976931348623157e+308'], [9999999999999998, '9999999999999998.0']]
  for (const [x, s] of cases) assert.equal(pyFloatRepr(x), s)
})
