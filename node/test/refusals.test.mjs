// Bundles a reader must refuse (bundle-format §4), and canonical JSON / fingerprints
// reproduced from Python's scorer.bundle.canonical_json.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { BundleFormatError, canonical, IncompatibleBundleError, IntegrityError, load, parseTyped, pyFloatRepr } from '../src/index.mjs'
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

test('a tree whose child points back to its root is refused, not followed forever', async () => {
  assert.match(INDEX.refusals.tree_cycle, /reaches node 0 twice/) // Python's refusal
  await assert.rejects(refuse('tree_cycle'), (e) => e instanceof BundleFormatError && /tree 0 reaches node 0 twice/.test(e.message))
})

test('a child index beyond 32 bits is refused, not wrapped', async () => {
  assert.match(INDEX.refusals.tree_wide_child, /Error/) // Python refuses it too
  await assert.rejects(refuse('tree_wide_child'), (e) => e instanceof BundleFormatError && /not a 32-bit integer/.test(e.message))
})

test('a "__proto__" key in a manifest is a key, not the prototype of the step\'s params', async () => {
  assert.equal(INDEX.refusals.proto_key, '') // Python loads it (an unknown key)
  const edited = await refuse('proto_key')
  const plainModel = await load(fixture('bundles', 'LogisticRegression-breast_cancer'))
  const row = Object.fromEntries(plainModel.inputNames.map((n, j) => [n, j === 0 ? 1e6 : 1.0]))
  assert.deepEqual(edited.predict(row), plainModel.predict(row)) // no clipping from __proto__
})
