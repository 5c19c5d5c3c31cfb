// Every fixture bundle (the conformance matrix's models of the implemented families, plus
// encoder / scaler / imputer / categorical-split models) against its golden vectors.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { test } from 'node:test'
import { load } from '../src/index.mjs'
import { fixture, INDEX, vecValue } from './fixtures.mjs'

const TREE_FAMILIES = new Set(['tree_ensemble', 'xgboost', 'lightgbm'])
const same = (a, b) => Object.is(a, b) || (a !== a && b !== b) // bit-equal, any NaN == NaN

test('the fixtures cover every implemented op and family', () => {
  const ops = new Set(INDEX.bundles.flatMap((b) => b.ops))
  for (const op of ['affine@1', 'impute@1', 'linear@1', 'link@1', 'one_hot@1', 'ordinal@1', 'tree_ensemble@1']) assert.ok(ops.has(op), op)
  const fams = new Set(INDEX.bundles.map((b) => b.family))
  for (const f of ['linear', 'tree_ensemble', 'xgboost', 'lightgbm']) assert.ok(fams.has(f), f)
  assert.ok(INDEX.bundles.length >= 40)
})

for (const b of INDEX.bundles) {
  test(`${b.name} scores its golden vectors`, async () => {
    // load() reproduces the verification rows: the original model's outputs, within the
    // family tolerance (a VerificationError otherwise)
    const model = await load(fixture(b.bundle))
    const vec = JSON.parse(fs.readFileSync(fixture(b.vectors, 'vectors.json'), 'utf8'))
    assert.equal(model.fingerprint, vec.fingerprint)
    const cols = {}
    for (const f of model.inputs) cols[f.name] = vec.rows.map((r) => vecValue(r.inputs[f.name]))
    const got = model.scoreColumns(cols)
    assert.deepEqual(Object.keys(got), Object.keys(vec.rows[0].expected))
    // tree steps' raw outputs: bit for bit
    if (TREE_FAMILIES.has(b.family) || b.ops.includes('tree_ensemble@1')) {
      const raw = Object.keys(vec.rows[0].columns || {})
      assert.ok(raw.length > 0, 'vectors.json records the tree margins')
      const ws = model.run(model.encode(cols, vec.rows.length), vec.rows.length)
      vec.rows.forEach((r, i) => {
        for (const c of raw) {
          const v = ws[i * model.width + model.index.get(c)]
          assert.ok(same(v, r.columns[c] ?? NaN), `row ${i} column ${c}: ${v} != ${r.columns[c]}`)
        }
      })
    }
    // every output: bit for bit for trees, within 1e-12 (abs + rel) elsewhere; labels equal
    const exact = TREE_FAMILIES.has(b.family)
    vec.rows.forEach((r, i) => {
      for (const [name, e0] of Object.entries(r.expected)) {
        const g = got[name][i]; const e = vecValue(e0)
        if (typeof g === 'number') {
          const ev = e === null ? NaN : e
          const ok = exact ? same(g, ev) : same(g, ev) || Math.abs(g - ev) <= 1e-12 + 1e-12 * Math.abs(ev)
          assert.ok(ok, `row ${i} '${name}': got ${g}, expected ${ev}`)
        } else assert.equal(g, e, `row ${i} '${name}'`)
      }
    })
  })
}
