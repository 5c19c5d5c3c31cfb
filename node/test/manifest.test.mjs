// Manifests the reader must refuse as Python's scorer does (bundle-format §1 table paths,
// §2 the manifest schema scorer/schema/manifest.schema.json): every refusal is a
// BundleFormatError with a message naming the key, never a TypeError.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { BundleFormatError, checkTablePath, fingerprintOf, load, parseTyped } from '../src/index.mjs'
import { MANIFEST_SCHEMA } from '../src/schema.mjs'
import { fixture } from './fixtures.mjs'

const SRC = fixture('bundles', 'LogisticRegression-breast_cancer') // scaler + linear + link
const CAT = fixture('bundles', 'onehot-standard-ridge-AuditNA') // string inputs
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'tablescore-node-manifest-'))
process.on('exit', () => fs.rmSync(TMP, { recursive: true, force: true }))
let serial = 0

/** A copy of bundle `src` with its manifest edited by fn(manifest, dir) (and then its text
 * by text(t)); refingerprinted unless refit is false. */
function mutate (src, fn, { text = (t) => t, refit = true } = {}) {
  const dir = path.join(TMP, String(serial++))
  fs.cpSync(src, dir, { recursive: true })
  const mpath = path.join(dir, 'manifest.json')
  const m = JSON.parse(fs.readFileSync(mpath, 'utf8'))
  fn(m, dir)
  let t = text(JSON.stringify(m, null, 1))
  if (refit) {
    const typed = parseTyped(t)
    m.fingerprint = fingerprintOf(typed)
    t = t.replace(/"fingerprint": "[0-9a-f]*"/, `"fingerprint": "${m.fingerprint}"`)
  }
  fs.writeFileSync(mpath, t)
  return dir
}

/** Move the table of steps[k]'s first role to path newOf(rel, dir) in the manifest. */
const retable = (newOf, k = 1) => (m, dir) => {
  const s = m.steps[k]
  const [role, rel] = Object.entries(s.tables)[0]
  const rel2 = newOf(rel, dir)
  s.tables[role] = rel2
  m.tables[rel2] = m.tables[rel]
  delete m.tables[rel]
}

const refused = (re) => (e) => {
  assert.ok(e instanceof BundleFormatError, `${e.name}: ${e.message}`)
  assert.match(e.message, re)
  return true
}

test('the fixture the cases edit loads unedited', async () => {
  await load(mutate(SRC, () => {}))
})

test('table paths must be plain relative paths (§1), before any file is touched', async () => {
  const plainPath = /is not a plain relative path inside the bundle directory/
  const cases = {
    dot_part: (rel) => rel.replace('tables/', 'tables/./'),
    dotdot_inside: (rel) => rel.replace('tables/', 'tables/../tables/'),
    empty_part: (rel) => rel.replace('tables/', 'tables//'),
    absolute_inside: (rel, dir) => path.join(fs.realpathSync(dir), rel),
    backslash: (rel) => rel.replace('tables/', 'tables\\'),
    trailing_slash: (rel) => rel + '/'
  }
  for (const [name, newOf] of Object.entries(cases)) {
    await assert.rejects(load(mutate(SRC, retable(newOf))), refused(plainPath), name)
  }
  // the verification table too
  await assert.rejects(load(mutate(SRC, (m) => {
    const rel = m.verification.table
    m.verification.table = './' + rel
    m.tables['./' + rel] = m.tables[rel]
    delete m.tables[rel]
  })), refused(plainPath))
  for (const bad of ['', '/etc/passwd', 'a/../b', './a', 'a//b', 'a\\b', 'a\0b', '.', '..', null, 3]) {
    assert.throws(() => checkTablePath(bad), refused(plainPath), JSON.stringify(bad))
  }
  for (const ok of ['tables/x.parquet', 'x', 'a/b/c.parquet', '..x', 'x..', '.hidden']) assert.equal(checkTablePath(ok), ok)
})

test('the manifest schema is applied: enumerations, types, required keys, integers', async () => {
  const cases = [
    ['op_version 1.0', (m) => {}, { text: (t) => t.replace(/"op_version": 1\b/, '"op_version": 1.0') }, /steps\[0\]\.op_version: must be integer, not 1\.0/],
    ['op_version true', (m) => { m.steps[0].op_version = true }, {}, /steps\[0\]\.op_version: must be integer/],
    ['op_version negative', (m) => { m.steps[0].op_version = -1 }, {}, /steps\[0\]\.op_version: -1 is below 0/],
    ['missing enum', (m) => { m.inputs[0].missing = 'Error' }, {}, /inputs\[0\]\.missing: "Error" is not one of "allow", "error"/],
    ['infinite enum', (m) => { m.inputs[0].infinite = 'ERROR' }, {}, /inputs\[0\]\.infinite: "ERROR" is not one of/],
    ['unknown enum', (m) => { m.inputs[0].unknown = 'ignore' }, {}, /inputs\[0\]\.unknown: "ignore" is not one of/],
    ['field type', (m) => { m.inputs[0].type = 'float' }, {}, /inputs\[0\]\.type: "float" is not one of/],
    ['output kind', (m) => { m.outputs[0].kind = 'bogus' }, {}, /outputs\[0\]\.kind: "bogus" is not one of/],
    ['model version', (m) => { m.model.version = 3 }, {}, /model\.version: must be string, not 3/],
    ['model task', (m) => { m.model.task = 'ranking' }, {}, /model\.task: "ranking" is not one of/],
    ['params list', (m) => { m.steps[0].params = [1] }, {}, /steps\[0\]\.params: must be object or null, not \[1\]/],
    ['step without name', (m) => { delete m.steps[0].name }, {}, /steps\[0\]: required key 'name' is missing/],
    ['empty op', (m) => { m.steps[0].op = '' }, {}, /steps\[0\]\.op: must not be empty/],
    ['step inputs numbers', (m) => { m.steps[0].inputs = [0, 1] }, {}, /steps\[0\]\.inputs\[0\]: must be string, not 0/],
    ['table entry null', (m) => { m.tables[Object.keys(m.tables)[0]] = null }, {}, /tables\..*: must be object, not null/],
    ['sha256 upper case', (m) => { for (const t of Object.values(m.tables)) t.sha256 = t.sha256.toUpperCase() }, {}, /sha256: .* does not match/],
    ['table role null', (m) => { m.steps[0].tables = { columns: null } }, {}, /steps\[0\]\.tables\.columns: must be string, not null/],
    ['no outputs', (m) => { delete m.outputs }, {}, /required key 'outputs' is missing/],
    ['verification tolerance', (m) => { m.verification.abs_tol = 'small' }, {}, /verification.* is not allowed here/],
    ['fingerprint', (m) => { m.fingerprint = 'abc' }, { refit: false }, /fingerprint: "abc" does not match/]
  ]
  for (const [name, fn, opts, re] of cases) await assert.rejects(load(mutate(SRC, fn, opts)), refused(re), name)
  await assert.rejects(load(mutate(CAT, (m) => { m.inputs.find((f) => f.type === 'string').categories = 'abc' })),
    refused(/inputs\[\d+\]\.categories: "abc" is not allowed here \(expected null or array\)/))
})

test('label outputs without classes or columns are refused, not a TypeError', async () => {
  const label = (m) => m.outputs.find((o) => o.kind === 'label')
  await assert.rejects(load(mutate(SRC, (m) => { delete label(m).classes })), refused(/label output 'label' needs 'classes'/))
  await assert.rejects(load(mutate(SRC, (m) => { label(m).classes = [0] })), refused(/needs 'classes'/))
  await assert.rejects(load(mutate(fixture('bundles', 'LogisticRegression-iris'), (m) => { delete label(m).columns })), refused(/has no 'columns'/))
})

test('the schema copy in src/ equals the published scorer/schema/manifest.schema.json', (t) => {
  const published = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'scorer', 'schema', 'manifest.schema.json')
  if (!fs.existsSync(published)) return t.skip('not in the tablescore repository')
  assert.deepEqual(MANIFEST_SCHEMA, JSON.parse(fs.readFileSync(published, 'utf8')))
})

test('the command line refuses a malformed manifest with exit 3 and one line, no stack', async () => {
  const { spawnSync } = await import('node:child_process')
  const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'tablescore.mjs')
  for (const dir of [mutate(CAT, (m) => { m.inputs.find((f) => f.type === 'string').categories = 'abc' }),
    mutate(SRC, (m) => { m.tables[Object.keys(m.tables)[0]] = null })]) {
    const r = spawnSync(process.execPath, [BIN, 'score', dir, '--data', 'x.csv', '--out', path.join(TMP, 'y.csv')], { encoding: 'utf8' })
    assert.equal(r.status, 3, r.stderr)
    assert.match(r.stderr, /^tablescore: .*manifest\.json: (inputs\[\d+\]\.categories|tables\.)/)
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
  }
})
