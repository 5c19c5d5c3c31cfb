// Input encoding as Python's scorer does it (bundle-format §2.2): scoreMatrix applies the
// schema's missing / infinite rules, and a number sent for a string field names the
// category Python's scorer.inputs._category_text names.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FieldTypeError, load, MissingValueError } from '../src/index.mjs'
import { categoryText } from '../src/model.mjs'
import { fixture } from './fixtures.mjs'

test('scoreMatrix refuses missing / infinite values as scoreColumns does', async () => {
  const m = await load(fixture('bundles', 'LogisticRegression-breast_cancer')) // missing, infinite: error
  const nIn = m.inputs.length
  assert.equal(m.inputs[1].missing, 'error')
  const row = Array.from({ length: nIn }, (_, j) => 1 + j / 10)
  const ok = m.scoreMatrix(Float64Array.from([...row, ...row]), 2)
  const cols = Object.fromEntries(m.inputs.map((f, j) => [f.name, [row[j], row[j]]]))
  assert.deepEqual(ok, m.scoreColumns(cols))
  const withNaN = Float64Array.from([...row, ...row]); withNaN[nIn + 1] = NaN
  assert.throws(() => m.scoreMatrix(withNaN, 2), (e) => e instanceof MissingValueError && /field 'x1' has missing values \(row 1\)/.test(e.message))
  cols.x1[1] = NaN
  assert.throws(() => m.scoreColumns(cols), (e) => e instanceof MissingValueError && /field 'x1' has missing values \(row 1\)/.test(e.message))
  const withInf = Float64Array.from([...row, ...row]); withInf[0] = -Infinity
  assert.throws(() => m.scoreMatrix(withInf, 2), (e) => e instanceof FieldTypeError && /field 'x0' has infinite values \(row 0\)/.test(e.message))
  assert.throws(() => m.scoreMatrix(Float64Array.from(row), 2), FieldTypeError) // too few values
})

test('scoreMatrix refuses a model with string inputs (raw numbers are not category codes)', async () => {
  const m = await load(fixture('bundles', 'onehot-standard-ridge-AuditNA'))
  assert.ok(m.inputs.some((f) => f.type === 'string'))
  const X = new Float64Array(m.inputs.length)
  assert.throws(() => m.scoreMatrix(X, 1), (e) => e instanceof FieldTypeError && /string input/.test(e.message))
})

test('a number for a string field names the category Python names (repr first, then the integer)', () => {
  const vocab = new Map(['-1.0', '0.0', '1.5', '1000000000000000000000', '1e+16', '8', '8.0'].map((c, i) => [c, i]))
  // Python: scorer.inputs._category_text(float(v), vocab)
  const python = [[-0, '-0.0'], [8, '8.0'], [1e16, '1e+16'], [1e21, '1000000000000000000000'], [0, '0.0'], [-1, '-1.0'],
    [1.5, '1.5'], [3, '3.0'], [2.5, '2.5'], [1e300, '1e+300'], [Infinity, 'inf'], [-Infinity, '-inf'], [2 ** 53 + 2, '9007199254740994.0']]
  for (const [v, s] of python) assert.equal(categoryText(v, vocab), s, String(v))
  const ints = new Map(['8', '0', '10000000000000000'].map((c, i) => [c, i]))
  for (const [v, s] of [[8, '8'], [-0, '0'], [1e16, '10000000000000000'], [8.5, '8.5']]) assert.equal(categoryText(v, ints), s, String(v))
})
