// A loaded bundle: input encoding (§2.2), the bound steps, outputs (§2.4), verification (§5).

import { readBundle } from './bundle.mjs'
import { BundleFormatError, FieldTypeError, MissingFieldError, MissingValueError, UnknownCategoryError, VerificationError } from './errors.mjs'
import { PyInt, ownKey, plain, pyFloatRepr } from './json.mjs'
import { bindStep } from './ops.mjs'

const XS_DOUBLE = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/
const XS_SPECIAL = { INF: Infinity, '+INF': Infinity, '-INF': -Infinity, Infinity, '+Infinity': Infinity, '-Infinity': -Infinity, NaN }
const MISSING_TEXT = new Set(['', 'NA', 'N/A', 'NaN', 'nan'])

/** A label class of the typed manifest: a Number, or a BigInt for an integer that a
 * Number cannot hold exactly (Python keeps it exact). */
function exactClass (c) {
  if (!(c instanceof PyInt)) return plain(c)
  const x = Number(c.text)
  return Number.isSafeInteger(x) ? x : BigInt(c.text)
}

/** Text for a number field (§2.2): xs:double, missing spellings, true / false. */
export function numberFromText (s, field) {
  const t = s.replace(/^[ \t\n\r]+|[ \t\n\r]+$/g, '')
  if (MISSING_TEXT.has(t)) return NaN
  if (t === 'true' || t === 'True' || t === 'TRUE') return 1.0
  if (t === 'false' || t === 'False' || t === 'FALSE') return 0.0
  if (XS_DOUBLE.test(t)) return Number(t)
  if (Object.hasOwn(XS_SPECIAL, t)) return XS_SPECIAL[t]
  throw new FieldTypeError(`field '${field}' expects numbers, got ${JSON.stringify(s)} (numbers as text are read as XML Schema's xs:double)`)
}

/** The category a number (a float, as Python's scorer receives it) names in a string field
 * (§2.2, scorer/inputs.py _category_text): its text (Python's repr: `8.0`, `1e+16`, `-0.0`);
 * for a number that is exactly an integer, the integer's text (`8`, `1000000000000000000000`)
 * when the vocabulary has it and not the repr. */
export function categoryText (x, vocab) {
  const s = pyFloatRepr(x)
  if (vocab.has(s)) return s
  if (Number.isFinite(x) && Number.isInteger(x)) {
    const i = BigInt(x).toString() // exact: -0 -> '0', 1e21 -> '1000000000000000000000'
    if (vocab.has(i)) return i
  }
  return s
}

function rowsList (rows) {
  const shown = rows.slice(0, 5).join(', ')
  const more = rows.length > 5 ? ` and ${rows.length - 5} more` : ''
  return `row${rows.length > 1 ? 's' : ''} ${shown}${more}`
}

export class Model {
  /** @param bundle what readBundle returns */
  constructor (bundle, { verify = true } = {}) {
    const m = bundle.manifest
    this.bundle = bundle
    this.name = m.model.name
    this.version = String(m.model.version ?? '1')
    this.fingerprint = m.fingerprint
    this.inputs = m.inputs.map((f) => ({
      name: f.name, type: f.type ?? 'double', categories: f.categories ?? null,
      missing: f.missing ?? 'allow', infinite: f.infinite ?? 'allow', unknown: f.unknown ?? 'code'
    }))
    const index = new Map()
    this.inputs.forEach((f, i) => {
      if (index.has(f.name)) throw new BundleFormatError('duplicate input field names')
      index.set(f.name, i)
    })
    this.vocabIndex = this.inputs.map((f) => (f.type === 'string' ? new Map((f.categories || []).map((c, i) => [c, i])) : null))
    const vocab = new Map(this.inputs.filter((f) => f.type === 'string').map((f) => [f.name, f.categories || []]))
    const ctx = {
      vocab,
      cols: (names) => Int32Array.from(names, (n) => {
        if (!index.has(n)) throw new BundleFormatError(`a step reads column '${n}', which no earlier step or input field provides`)
        return index.get(n)
      })
    }
    this.plan = []
    for (const step of bundle.steps) {
      for (const o of step.outputs) {
        if (index.has(o)) throw new BundleFormatError(`step '${step.name}' redefines column '${o}'`)
        index.set(o, index.size)
      }
      const bound = bindStep(step, ctx)
      bound.name = step.name
      for (const [k, v] of bound.outVocab || []) vocab.set(k, v)
      this.plan.push(bound)
    }
    this.index = index
    this.width = index.size
    // typed outputs: the classes keep Python's int / float distinction for CSV text
    const typedOutputs = bundle.typed.get('outputs')
    this.outputs = m.outputs.map((o, i) => {
      const cols = [o.column, ...(o.columns || [])].filter((c) => c !== undefined && c !== null)
      for (const c of cols) if (!index.has(c)) throw new BundleFormatError(`output '${o.name}' reads unknown column '${c}'`)
      if (o.kind === 'label' && o.rule !== 'argmax' && o.rule !== 'threshold') throw new BundleFormatError(`label rule '${o.rule}' unknown (output '${o.name}')`)
      if (o.kind === 'label') {
        const nc = o.rule === 'argmax' ? (Array.isArray(o.columns) ? o.columns.length : -1) : 2
        if (o.rule === 'argmax' && nc < 0) throw new BundleFormatError(`label output '${o.name}' (rule argmax) has no 'columns'`)
        if (o.rule === 'threshold' && (o.column === undefined || o.column === null)) throw new BundleFormatError(`label output '${o.name}' (rule threshold) has no 'column'`)
        if (!Array.isArray(o.classes) || o.classes.length !== nc) throw new BundleFormatError(`label output '${o.name}' needs 'classes', one per ${o.rule === 'argmax' ? 'column' : 'side of the threshold'} (${nc})`)
      }
      if (o.kind !== 'label' && (o.column === undefined || o.column === null)) throw new BundleFormatError(`output '${o.name}' (kind ${o.kind}) has no 'column'`)
      const typedClasses = o.kind === 'label' ? typedOutputs[i].get('classes') : null
      return {
        ...o,
        // an integer class beyond 2^53 is a BigInt (exact, as Python's int), others Numbers
        ...(typedClasses ? { classes: typedClasses.map(exactClass) } : {}),
        col: o.column != null ? index.get(o.column) : -1,
        cols: o.columns ? o.columns.map((c) => index.get(c)) : null,
        threshold: Number(o.threshold ?? 0),
        typedClasses
      }
    })
    if (verify && bundle.verification) this.verify()
  }

  get inputNames () { return this.inputs.map((f) => f.name) }
  get outputNames () { return this.outputs.map((o) => o.name) }

  /** Encode columns {field: array} into a fresh workspace (Float64Array n * width). */
  encode (columns, n) {
    const W = this.width
    const ws = new Float64Array(n * W)
    // (own keys only: a field named "constructor" or "toString" is not inherited from Object)
    const absent = this.inputs.filter((f) => !Object.hasOwn(columns, f.name)).map((f) => `'${f.name}'`)
    if (absent.length) throw new MissingFieldError(`missing input field${absent.length > 1 ? 's' : ''} ${absent.join(', ')} (model expects ${this.inputs.length}: ${this.inputNames.join(', ')})`)
    this.inputs.forEach((f, j) => {
      const values = columns[f.name]
      if (values.length !== n) throw new FieldTypeError(`field '${f.name}' has ${values.length} values, expected ${n}`)
      const vocab = this.vocabIndex[j]
      for (let i = 0; i < n; i++) {
        const v = values[i]
        let x
        if (vocab) x = this._code(f, vocab, v, i)
        else if (v === null || v === undefined) x = NaN
        else if (typeof v === 'number') x = v
        else if (typeof v === 'boolean') x = v ? 1.0 : 0.0
        else if (typeof v === 'bigint') x = Number(v)
        else if (typeof v === 'string') x = numberFromText(v, f.name)
        else throw new FieldTypeError(`field '${f.name}' expects numbers (${f.type}), got ${String(v)}`)
        ws[i * W + j] = x
      }
    })
    this._checkValues(ws, n)
    return ws
  }

  /** Missing / infinite values the schema refuses, naming the field and rows (§2.2). */
  _checkValues (ws, n) {
    const W = this.width
    this.inputs.forEach((f, j) => {
      if (f.missing === 'error') {
        const bad = []
        for (let i = 0; i < n; i++) if (ws[i * W + j] !== ws[i * W + j]) bad.push(i)
        if (bad.length) throw new MissingValueError(`field '${f.name}' has missing values (${rowsList(bad)}); this model does not accept missing values for it`)
      }
      if (f.infinite === 'error') {
        const bad = []
        for (let i = 0; i < n; i++) if (Math.abs(ws[i * W + j]) === Infinity) bad.push(i)
        if (bad.length) throw new FieldTypeError(`field '${f.name}' has infinite values (${rowsList(bad)}); this model accepts only finite numbers for it`)
      }
    })
  }

  _code (f, vocab, v, i) {
    if (v === null || v === undefined || (typeof v === 'number' && v !== v)) return NaN
    let s
    if (typeof v === 'string') s = v
    else if (typeof v === 'boolean') s = v ? 'True' : 'False' // Python's str(True)
    else if (typeof v === 'bigint') s = v.toString() // a Python int: its text
    else if (typeof v === 'number') s = categoryText(v, vocab)
    else s = String(v)
    const code = vocab.get(s)
    if (code !== undefined) return code
    if (f.unknown === 'error') {
      const known = (f.categories || []).slice(0, 10).map((c) => `'${c}'`).join(', ')
      throw new UnknownCategoryError(`unknown category '${s}' for field '${f.name}' in row ${i} (known: ${known}${(f.categories || []).length > 10 ? '...' : ''})`)
    }
    return -1.0
  }

  /** Run every step on ws (n rows); throws the step's input error for a refused row. */
  run (ws, n) {
    for (const b of this.plan) {
      const status = b.run(ws, n, this.width)
      if (status >= 0) throw b.error ? b.error(ws, status, this.width) : new Error(`step '${b.name}' failed on row ${status}`)
    }
    return ws
  }

  _label (o, ws, r) {
    let i
    if (o.rule === 'argmax') {
      // numpy's argmax: the first NaN if some value is NaN and not all are; the first maximum
      i = -1
      let top = 0; let anyNum = false; let firstNan = -1
      for (let j = 0; j < o.cols.length; j++) {
        const v = ws[r + o.cols[j]]
        if (v !== v) { if (firstNan < 0) firstNan = j; continue }
        anyNum = true
        if (i < 0 || v > top) { i = j; top = v }
      }
      if (!anyNum) i = -1
      else if (firstNan >= 0) i = firstNan
    } else {
      const v = ws[r + o.col]
      i = v !== v ? -1 : (v > o.threshold ? 1 : 0)
    }
    return i < 0 ? null : o.classes[i]
  }

  /** Score columns {field: array}; returns {output name: array} (labels: class or null). */
  scoreColumns (columns) {
    const first = this.inputs.length && Object.hasOwn(columns, this.inputs[0].name) ? columns[this.inputs[0].name] : null
    const n = first ? first.length : 0
    const ws = this.run(this.encode(columns, n), n)
    return this._outputs(ws, n)
  }

  _outputs (ws, n) {
    const W = this.width
    const res = {}
    for (const o of this.outputs) {
      const out = o.kind === 'label' ? new Array(n) : new Float64Array(n)
      if (o.kind === 'label') for (let i = 0; i < n; i++) out[i] = this._label(o, ws, i * W)
      else for (let i = 0; i < n; i++) out[i] = ws[i * W + o.col]
      res[o.name] = out
    }
    return res
  }

  /** Score rows (array of {field: value}, or one such object); returns one object per row
   * with every output column, named as the Python scorer names them. */
  predict (rows) {
    const list = Array.isArray(rows) ? rows : [rows]
    const cols = {}
    for (const f of this.inputs) ownKey(cols, f.name, list.map((r) => (Object.hasOwn(r, f.name) ? r[f.name] : undefined)))
    for (const f of this.inputs) if (list.length && list.every((r) => !Object.hasOwn(r, f.name))) delete cols[f.name]
    const res = this.scoreColumns(list.length ? cols : Object.fromEntries(this.inputs.map((f) => [f.name, []])))
    const out = list.map((_, i) => Object.fromEntries(this.outputs.map((o) => [o.name, res[o.name][i]])))
    return Array.isArray(rows) ? out : out[0]
  }

  /** Score a purely numeric row-major Float64Array (n rows x inputs), no per-value checks
   * beyond the schema's missing / infinite rules: the fast path for numeric models (a model
   * with string inputs is refused: raw numbers are not category codes). */
  scoreMatrix (X, n) {
    const nIn = this.inputs.length; const W = this.width
    const strings = this.inputs.filter((f) => f.type === 'string').map((f) => `'${f.name}'`)
    if (strings.length) throw new FieldTypeError(`scoreMatrix takes only numeric models; this model has string input${strings.length > 1 ? 's' : ''} ${strings.join(', ')} (use scoreColumns or predict)`)
    if (X.length < n * nIn) throw new FieldTypeError(`scoreMatrix: ${X.length} values for ${n} rows of ${nIn} inputs`)
    const ws = new Float64Array(n * W)
    for (let i = 0; i < n; i++) for (let j = 0; j < nIn; j++) ws[i * W + j] = X[i * nIn + j]
    this._checkValues(ws, n)
    return this._outputs(this.run(ws, n), n)
  }

  /** Score the verification rows and compare with the recorded outputs (§5). */
  verify () {
    const v = this.bundle.verification
    const names = Object.keys(v.inputs)
    const n = names.length ? v.inputs[names[0]].length : 0
    if (n === 0) return 0
    const got = this.scoreColumns(v.inputs)
    for (const [name, expected] of Object.entries(v.expected)) {
      if (!(name in got)) throw new VerificationError(`model '${this.name}': verification column '${name}' is not an output`)
      const bad = firstMismatch(got[name], expected, v.absTol, v.relTol)
      if (bad >= 0) throw new VerificationError(`model '${this.name}' verification: row ${bad}, column '${name}': got ${got[name][bad]}, expected ${expected[bad]}; the parameters no longer reproduce the original model`)
    }
    return n
  }
}

/** First row where got and expected differ beyond abs + rel * |expected| (NaN == NaN;
 * labels compare as text), or -1. */
export function firstMismatch (got, expected, absTol, relTol) {
  for (let i = 0; i < expected.length; i++) {
    const g = got[i]; const e = expected[i]
    if (typeof e === 'number' && (typeof g === 'number' || g === null)) {
      const gv = g === null ? NaN : g
      if (gv === e || (gv !== gv && e !== e)) continue
      if (Math.abs(gv - e) <= absTol + relTol * Math.abs(e)) continue
      return i
    }
    if (g === e || (g !== null && e !== null && String(g) === String(e))) continue
    return i
  }
  return -1
}

/** Load a bundle directory: checks and binds it, and reproduces its verification rows. */
export async function load (dir, { verify = true, verifyHashes = true } = {}) {
  return new Model(await readBundle(dir, { verifyHashes }), { verify })
}
