// The ops of docs/bundle-format.md §6 this scorer implements. A binder turns a step (params,
// tables) into {run(ws, n, W) -> -1 | first refused row, error(ws, row, W) -> Error,
// outVocab}. ws is the row-major float64 workspace (W columns).

import { expCR } from './exp.mjs'
import { BundleFormatError, FieldTypeError, IncompatibleBundleError, MissingValueError, UnknownCategoryError } from './errors.mjs'

const fround = Math.fround
const NAN = NaN

function col (t, name, role) {
  if (!t || !(name in t)) throw new Error(`table '${role}' lacks column '${name}'`)
  return t[name]
}
const f64 = (a) => Float64Array.from(a, (v) => (v === null ? NAN : Number(v)))
// an index or code column: whole numbers of 32 bits (Int32Array.from would wrap 2**32 + 4 to
// 4 and truncate 2.5 to 2, where Python refuses them)
const i32 = (a) => Int32Array.from(a, (v) => {
  const x = Number(v)
  if (!Number.isInteger(x) || x < -(2 ** 31) || x >= 2 ** 31) throw new Error(`an integer column holds ${v}, not a 32-bit integer`)
  return x
})

function table (step, role) {
  const t = step.tables[role]
  if (!t) throw new Error(`step '${step.name}' lacks table '${role}'`)
  return t
}

function paramFloat (step, key, dflt) {
  const v = step.params[key]
  if (v === undefined || v === null) return dflt
  if (v === 'NaN') return NAN
  if (v === 'Infinity') return Infinity
  if (v === '-Infinity') return -Infinity
  return Number(v)
}

// --- preprocessing (§6.1, §6.2) ------------------------------------------------------------
function bindAffine (step, ctx) {
  const t = table(step, 'columns')
  const inC = ctx.cols(step.inputs); const outC = ctx.cols(step.outputs)
  const sub = f64(col(t, 'sub', 'columns')); const div = f64(col(t, 'div', 'columns'))
  const mul = f64(col(t, 'mul', 'columns')); const add = f64(col(t, 'add', 'columns'))
  if (inC.length !== outC.length || inC.length !== sub.length) throw new Error('affine: inputs, outputs and table rows differ in length')
  const clip = Boolean(step.params.clip)
  const lo = paramFloat(step, 'clip_min', -Infinity); const hi = paramFloat(step, 'clip_max', Infinity)
  const k = inC.length
  return {
    run (ws, n, W) {
      for (let i = 0, r = 0; i < n; i++, r += W) {
        for (let j = 0; j < k; j++) {
          let y = ((ws[r + inC[j]] - sub[j]) / div[j]) * mul[j] + add[j]
          if (clip) { if (y < lo) y = lo; else if (y > hi) y = hi }
          ws[r + outC[j]] = y
        }
      }
      return -1
    }
  }
}

function bindImpute (step, ctx) {
  const t = table(step, 'columns')
  const emit = col(t, 'emit', 'columns').map(Boolean)
  const fill = f64(col(t, 'fill', 'columns'))
  const nIn = step.inputs.length
  if (emit.length !== nIn || fill.length !== nIn) throw new Error(`impute: table 'columns' has ${emit.length} rows for ${nIn} inputs`)
  const indSrc = i32(step.tables.indicator ? step.tables.indicator.input : [])
  for (const s of indSrc) if (s < 0 || s >= nIn) throw new Error(`impute: indicator.input out of range 0..${nIn - 1}`)
  const outs = ctx.cols(step.outputs)
  const nEmit = emit.filter(Boolean).length
  if (outs.length !== nEmit + indSrc.length) throw new Error('impute: outputs must be the emitted inputs then the indicators')
  const fc = t.fill_category || []
  fc.forEach((cat, j) => {
    if (cat === null || cat === undefined) return
    const vocab = ctx.vocab.get(step.inputs[j])
    const code = vocab ? vocab.indexOf(cat) : -1
    if (code < 0) throw new Error(`fill category ${JSON.stringify(cat)} not in the vocabulary of '${step.inputs[j]}'`)
    fill[j] = code
  })
  const mv = paramFloat(step, 'missing_value', NAN)
  const nanMarker = Number.isNaN(mv)
  const inC = ctx.cols(step.inputs)
  const emitIn = []; const emitOut = []
  const outVocab = new Map()
  for (let j = 0, k = 0; j < nIn; j++) {
    if (!emit[j]) continue
    emitIn.push(j); emitOut.push(outs[k])
    if (ctx.vocab.has(step.inputs[j])) outVocab.set(step.outputs[k], ctx.vocab.get(step.inputs[j]))
    k++
  }
  const indCols = outs.slice(nEmit)
  const isMissing = (x) => (nanMarker ? x !== x : x === mv)
  return {
    outVocab,
    run (ws, n, W) {
      for (let i = 0, r = 0; i < n; i++, r += W) {
        for (let m = 0; m < emitIn.length; m++) {
          const j = emitIn[m]; const x = ws[r + inC[j]]
          ws[r + emitOut[m]] = isMissing(x) ? fill[j] : x
        }
        for (let m = 0; m < indSrc.length; m++) ws[r + indCols[m]] = isMissing(ws[r + inC[indSrc[m]]]) ? 1.0 : 0.0
      }
      return -1
    }
  }
}

// --- linear (§6.3, §6.4) ---------------------------------------------------------------------
function bindLinear (step, ctx) {
  const c = table(step, 'coefficients')
  const k = step.outputs.length; const nf = step.inputs.length
  const coef = Array.from({ length: k }, (_, j) => f64(col(c, `coef_${j}`, 'coefficients')))
  const intercept = f64(col(table(step, 'intercepts'), 'intercept', 'intercepts'))
  if (intercept.length !== k || coef.some((a) => a.length !== nf)) throw new Error('linear: table shapes do not match the step')
  const inC = ctx.cols(step.inputs); const outC = ctx.cols(step.outputs)
  return {
    run (ws, n, W) {
      for (let i = 0, r = 0; i < n; i++, r += W) {
        for (let j = 0; j < k; j++) {
          const cj = coef[j]
          let acc = 0.0
          for (let f = 0; f < nf; f++) acc += ws[r + inC[f]] * cj[f]
          ws[r + outC[j]] = acc + intercept[j]
        }
      }
      return -1
    }
  }
}

// exp correctly rounded: the reference kernels call the C library's exp (see exp.mjs)
const exp = expCR
const expit = (x) => 1.0 / (1.0 + exp(-x))

function bindLink (step, ctx) {
  const fn = step.params.function
  const nIn = step.inputs.length; const nOut = step.outputs.length
  const known = ['identity', 'logistic', 'logistic2', 'softmax', 'logistic_ovr', 'exp']
  if (!known.includes(fn)) throw new Error(`link function '${fn}' unknown (known: ${known.join(', ')})`)
  if ((fn === 'logistic2' && (nIn !== 1 || nOut !== 2)) || (fn !== 'logistic2' && nIn !== nOut) || nIn === 0) {
    throw new Error(`link '${fn}' cannot map ${nIn} inputs to ${nOut} outputs`)
  }
  const inC = ctx.cols(step.inputs); const outC = ctx.cols(step.outputs); const k = nIn
  const rowFn = {
    identity (ws, r) { for (let j = 0; j < k; j++) ws[r + outC[j]] = ws[r + inC[j]] },
    logistic (ws, r) { for (let j = 0; j < k; j++) ws[r + outC[j]] = expit(ws[r + inC[j]]) },
    logistic2 (ws, r) { const p = expit(ws[r + inC[0]]); ws[r + outC[0]] = 1.0 - p; ws[r + outC[1]] = p },
    softmax (ws, r) {
      let m = ws[r + inC[0]]
      for (let j = 1; j < k; j++) if (ws[r + inC[j]] > m) m = ws[r + inC[j]]
      let s = 0.0
      for (let j = 0; j < k; j++) { const e = exp(ws[r + inC[j]] - m); ws[r + outC[j]] = e; s += e }
      for (let j = 0; j < k; j++) ws[r + outC[j]] /= s
    },
    logistic_ovr (ws, r) {
      let s = 0.0
      for (let j = 0; j < k; j++) { const p = expit(ws[r + inC[j]]); ws[r + outC[j]] = p; s += p }
      for (let j = 0; j < k; j++) ws[r + outC[j]] /= s
    },
    exp (ws, r) { for (let j = 0; j < k; j++) ws[r + outC[j]] = exp(ws[r + inC[j]]) }
  }[fn]
  return { run (ws, n, W) { for (let i = 0, r = 0; i < n; i++, r += W) rowFn(ws, r); return -1 } }
}

// --- encoders (§6.6) -------------------------------------------------------------------------
// Per input: a code input (its column holds codes of a vocabulary) maps code -> table row;
// a numeric input maps number -> table row (a Map keyed by the number; -0 === 0 in a Map).
function lookup (step, ctx) {
  const t = table(step, 'categories')
  const nIn = step.inputs.length
  const inp = i32(col(t, 'input', 'categories'))
  const missing = col(t, 'missing', 'categories').map(Boolean)
  const category = t.category || new Array(inp.length).fill(null)
  const number = t.number ? f64(t.number) : new Float64Array(inp.length).fill(NAN)
  const per = []
  for (let j = 0; j < nIn; j++) {
    const vocab = ctx.vocab.get(step.inputs[j]) || null
    per.push({ vocab, index: vocab ? new Map(vocab.map((c, i) => [c, i])) : null, codeRow: vocab ? new Int32Array(vocab.length).fill(-1) : null, numRow: vocab ? null : new Map(), missRow: -1 })
  }
  for (let r = 0; r < inp.length; r++) {
    const j = inp[r]
    if (!(j >= 0 && j < nIn)) throw new Error(`categories: input position out of range 0..${nIn - 1}`)
    const p = per[j]
    if (missing[r]) {
      if (p.missRow >= 0) throw new Error(`categories: input ${j} has 2 missing rows`)
      p.missRow = r
    } else if (p.vocab) {
      const c = p.index.has(category[r]) ? p.index.get(category[r]) : -1
      if (category[r] === null || c < 0) throw new Error(`categories: ${JSON.stringify(category[r])} is not in the vocabulary of '${step.inputs[j]}'`)
      if (p.codeRow[c] >= 0) throw new Error(`categories: ${JSON.stringify(category[r])} repeated for input ${j}`)
      p.codeRow[c] = r
    } else {
      if (category[r] !== null && category[r] !== undefined) throw new Error(`categories: string categories for input '${step.inputs[j]}', which holds numbers, not codes`)
      if (Number.isNaN(number[r])) throw new Error(`categories: NaN number for input ${j} (use the missing row)`)
      if (p.numRow.has(number[r])) throw new Error(`categories: repeated number for input ${j}`)
      p.numRow.set(number[r], r)
    }
  }
  // table row of value x of input j, or -1 (unknown)
  const rowOf = (j, x) => {
    const p = per[j]
    if (x !== x) return p.missRow
    if (p.vocab) return (x >= 0 && x < p.vocab.length && Number.isInteger(x)) ? p.codeRow[x] : -1
    const r = p.numRow.get(x)
    return r === undefined ? -1 : r
  }
  return { per, rowOf }
}

function inputsTable (step, modes) {
  const t = table(step, 'inputs')
  const handle = col(t, 'handle_unknown', 'inputs').map(String)
  if (handle.length !== step.inputs.length) throw new Error(`inputs: ${handle.length} rows for ${step.inputs.length} step inputs`)
  for (const h of handle) if (!modes.includes(h)) throw new Error(`handle_unknown '${h}' unknown (known: ${modes.join(', ')})`)
  const fields = step.inputs.map((c, j) => (t.field && t.field[j] !== null && t.field[j] !== undefined ? String(t.field[j]) : c))
  return { t, handle, fields }
}

function encoderError (step, lk, inC, handle, fields) {
  return (ws, row, W) => {
    for (let j = 0; j < inC.length; j++) {
      if (handle[j] !== 'error') continue
      const x = ws[row * W + inC[j]]
      if (lk.rowOf(j, x) >= 0) continue
      if (x !== x) return new MissingValueError(`field '${fields[j]}' has a missing value in row ${row}; step '${step.name}' did not see missing values in training and refuses them`)
      const v = lk.per[j].vocab
      const shown = v ? (x >= 0 && x < v.length && Number.isInteger(x) ? v[x] : '<a category not in the model\'s vocabulary>') : x
      return new UnknownCategoryError(`unknown category ${JSON.stringify(shown)} for field '${fields[j]}' in row ${row} (step '${step.name}' refuses categories not seen in training)`)
    }
    return new UnknownCategoryError(`step '${step.name}' refused row ${row}`)
  }
}

function bindOneHot (step, ctx) {
  const lk = lookup(step, ctx)
  const { t, handle, fields } = inputsTable(step, ['error', 'ignore', 'infrequent'])
  const target = i32(col(table(step, 'categories'), 'output', 'categories'))
  const nOut = step.outputs.length
  const infreq = t.infrequent_output ? i32(t.infrequent_output) : new Int32Array(handle.length).fill(-1)
  const unkTarget = handle.map((h, j) => (h === 'infrequent' ? infreq[j] : -1))
  for (const v of [...target, ...unkTarget]) if (v >= nOut || v < -1) throw new Error(`one_hot: output out of range -1..${nOut - 1}`)
  const inC = ctx.cols(step.inputs); const outC = ctx.cols(step.outputs)
  return {
    error: encoderError(step, lk, inC, handle, fields),
    run (ws, n, W) {
      for (let i = 0, r = 0; i < n; i++, r += W) {
        for (let k = 0; k < nOut; k++) ws[r + outC[k]] = 0.0
        for (let j = 0; j < inC.length; j++) {
          const row = lk.rowOf(j, ws[r + inC[j]])
          let tg
          if (row >= 0) tg = target[row]
          else if (handle[j] === 'error') return i
          else tg = unkTarget[j]
          if (tg >= 0) ws[r + outC[tg]] = 1.0
        }
      }
      return -1
    }
  }
}

function bindOrdinal (step, ctx) {
  if (step.outputs.length !== step.inputs.length) throw new Error('ordinal: one output per input')
  const lk = lookup(step, ctx)
  const { t, handle, fields } = inputsTable(step, ['error', 'value'])
  const code = f64(col(table(step, 'categories'), 'code', 'categories'))
  const unkValue = t.unknown_value ? f64(t.unknown_value) : new Float64Array(handle.length).fill(NAN)
  const inC = ctx.cols(step.inputs); const outC = ctx.cols(step.outputs)
  return {
    error: encoderError(step, lk, inC, handle, fields),
    run (ws, n, W) {
      for (let i = 0, r = 0; i < n; i++, r += W) {
        for (let j = 0; j < inC.length; j++) {
          const row = lk.rowOf(j, ws[r + inC[j]])
          if (row >= 0) ws[r + outC[j]] = code[row]
          else if (handle[j] === 'error') return i
          else ws[r + outC[j]] = unkValue[j]
        }
      }
      return -1
    }
  }
}

function bindKbins (step, ctx) {
  const t = table(step, 'edges')
  const inp = i32(col(t, 'input', 'edges')); const edge = f64(col(t, 'edge', 'edges'))
  const encode = step.params.encode ?? 'ordinal'
  if (encode !== 'ordinal' && encode !== 'onehot') throw new Error(`kbins: encode '${encode}' unknown (known: ordinal, onehot)`)
  const onehot = encode === 'onehot'; const f32 = Boolean(step.params.float32_input)
  const inner = []; const outStart = []
  let start = 0
  for (let j = 0; j < step.inputs.length; j++) {
    const e = [...edge].filter((_, r) => inp[r] === j)
    if (e.length < 2) throw new Error(`kbins: input ${j} has ${e.length} edges, needs at least 2`)
    for (let m = 1; m < e.length; m++) if (!(e[m] >= e[m - 1])) throw new Error(`kbins: edges of input ${j} are not ascending`)
    inner.push(Float64Array.from(e.slice(1, -1)))
    outStart.push(onehot ? start : j)
    start += e.length - 1
  }
  const nOut = onehot ? start : step.inputs.length
  if (step.outputs.length !== nOut) throw new Error(`kbins: ${step.outputs.length} outputs, the edges define ${nOut}`)
  const inC = ctx.cols(step.inputs); const outC = ctx.cols(step.outputs)
  return {
    run (ws, n, W) {
      for (let i = 0, r = 0; i < n; i++, r += W) {
        for (let j = 0; j < inC.length; j++) {
          let x = ws[r + inC[j]]
          if (f32) x = fround(x)
          const e = inner[j]; const k = e.length
          let b
          if (x !== x) b = k
          else { let lo = 0; let hi = k; while (lo < hi) { const mid = (lo + hi) >> 1; if (e[mid] <= x) lo = mid + 1; else hi = mid } b = lo }
          if (onehot) {
            for (let q = 0; q <= k; q++) ws[r + outC[outStart[j] + q]] = 0.0
            ws[r + outC[outStart[j] + b]] = 1.0
          } else ws[r + outC[outStart[j]]] = b
        }
      }
      return -1
    }
  }
}

// --- tree_ensemble (§6.5) --------------------------------------------------------------------
export const ZERO_THRESHOLD = 1.0000000180025095e-35

function choice (step, key, options) {
  const v = step.params[key]
  if (!options.includes(v)) throw new Error(`tree_ensemble: params.${key} is ${JSON.stringify(v)}; expected one of ${options.join(', ')}`)
  return v
}

function bindTreeEnsemble (step, ctx) {
  const p = step.params
  const k = Number(p.n_outputs); const Wl = Number(p.leaf_width)
  if (k !== step.outputs.length) throw new Error(`tree_ensemble: n_outputs is ${k} but the step has ${step.outputs.length} outputs`)
  if (!(Wl >= 1 && Wl <= k)) throw new Error(`tree_ensemble: leaf_width ${Wl} must be between 1 and n_outputs (${k})`)
  const average = choice(step, 'aggregation', ['sum', 'average']) === 'average'
  const acc32 = choice(step, 'accumulate_dtype', ['float64', 'float32']) === 'float32'
  const cmp32 = choice(step, 'compare_dtype', ['float64', 'float32']) === 'float32'
  const strict = choice(step, 'split_operator', ['<=', '<']) === '<'
  const base = Float64Array.from(p.base_score, (b) => paramFloat({ params: { b } }, 'b'))
  if (base.length !== k) throw new Error(`tree_ensemble: base_score has ${base.length} values for ${k} outputs`)
  const trees = table(step, 'trees'); const nodes = table(step, 'nodes')
  const root = i32(col(trees, 'root', 'trees')); const output = i32(col(trees, 'output', 'trees'))
  const scale = f64(col(trees, 'scale', 'trees'))
  const feature = i32(col(nodes, 'feature', 'nodes')); const N = feature.length
  const threshold = f64(col(nodes, 'threshold', 'nodes'))
  const left = i32(col(nodes, 'left', 'nodes')); const right = i32(col(nodes, 'right', 'nodes'))
  const defaultLeft = Uint8Array.from(col(nodes, 'default_left', 'nodes'), (v) => (v ? 1 : 0))
  const missing = i32(col(nodes, 'missing', 'nodes')); const kind = i32(col(nodes, 'kind', 'nodes'))
  let missingChild
  if ('missing_child' in nodes) {
    if (step.op_version < 2) throw new Error(`tree_ensemble: column 'nodes.missing_child' needs op version 2 (the step says version ${step.op_version})`)
    missingChild = i32(nodes.missing_child)
  } else missingChild = new Int32Array(N).fill(-1)
  const values = Array.from({ length: Wl }, (_, w) => f64(col(nodes, `value_${w}`, 'nodes')))
  const T = root.length
  if (average && T === 0) throw new Error("tree_ensemble: aggregation 'average' over an empty trees table")
  const nIn = step.inputs.length
  for (let t = 0; t < T; t++) {
    if (root[t] < 0 || root[t] >= N) throw new Error(`tree_ensemble: tree ${t} has root ${root[t]}, outside the ${N} rows of the nodes table`)
    if (output[t] < 0 || output[t] + Wl > k) throw new Error(`tree_ensemble: tree ${t} writes outputs beyond the ${k} outputs`)
  }
  for (let i = 0; i < N; i++) {
    const f = feature[i]
    if (f < -1 || f >= nIn) throw new Error(`tree_ensemble: node ${i} reads feature ${f}; the step has ${nIn} inputs`)
    if (f >= 0 && (left[i] < 0 || left[i] >= N || right[i] < 0 || right[i] >= N)) throw new Error(`tree_ensemble: node ${i} has a child outside the nodes table`)
    if (missing[i] < 0 || missing[i] > 2) throw new Error(`tree_ensemble: node ${i} has missing kind ${missing[i]} (expected 0, 1 or 2)`)
    if (kind[i] < 0 || kind[i] > 1) throw new Error(`tree_ensemble: node ${i} has kind ${kind[i]} (expected 0 numeric or 1 categorical)`)
    const mc = missingChild[i]
    if (mc !== -1 && (mc < 0 || f < 0 || mc >= N || kind[i] !== 0 || feature[mc] >= 0)) throw new Error(`tree_ensemble: node ${i} has missing_child ${mc} (a numeric split's leaf row, or -1)`)
  }
  // every tree a tree: no node reached twice from its root (a cycle would loop forever, a
  // shared node is not what any library writes), as the Python binder checks
  const seen = new Int32Array(N)
  for (let t = 0; t < T; t++) {
    const stack = [root[t]]
    while (stack.length) {
      const i = stack.pop()
      if (seen[i] === t + 1) throw new Error(`tree_ensemble: tree ${t} reaches node ${i} twice; the nodes of a tree must form a tree (no cycles, no shared nodes)`)
      seen[i] = t + 1
      if (feature[i] >= 0) stack.push(left[i], right[i]) // (a missing_child is a leaf)
    }
  }
  const cats = new Map() // node -> Set of categories going left
  if (step.tables.categories) {
    const cn = i32(col(step.tables.categories, 'node', 'categories'))
    const cc = step.tables.categories.category.map(Number)
    for (let r = 0; r < cn.length; r++) {
      if (cn[r] < 0 || cn[r] >= N || kind[cn[r]] !== 1 || feature[cn[r]] < 0) throw new Error(`tree_ensemble: categories row ${r} names node ${cn[r]}, which is not a categorical split`)
      if (!(cc[r] >= 0 && cc[r] < 2 ** 31)) throw new Error(`tree_ensemble: categories row ${r} has category ${cc[r]} (expected 0 .. 2**31-1)`)
      if (!cats.has(cn[r])) cats.set(cn[r], new Set())
      cats.get(cn[r]).add(cc[r])
    }
  }
  const refuseOverflow = Boolean(p.refuse_overflow)
  const inC = ctx.cols(step.inputs); const outC = ctx.cols(step.outputs)
  const x = new Float64Array(nIn); const out = new Float64Array(k)
  const scale32 = Float64Array.from(scale, fround)
  const nodeSets = Array.from({ length: N }, (_, i) => cats.get(i) || null)
  const divisor = acc32 ? fround(T) : T

  function leafOf (node) {
    for (;;) {
      const f = feature[node]
      if (f < 0) return node
      let v = x[f]
      const miss = missing[node]
      let isMissing
      if (v !== v) {
        if (miss === 2) { v = 0.0; isMissing = false } else isMissing = true
      } else isMissing = miss === 1 && Math.abs(v) <= ZERO_THRESHOLD
      let goLeft
      if (isMissing) {
        const mc = missingChild[node]
        if (mc >= 0) return mc
        goLeft = defaultLeft[node] === 1
      } else if (kind[node] === 1) {
        const s = nodeSets[node]
        goLeft = v >= 0 && v < 4294967296 && s !== null && s.has(Math.trunc(v))
      } else goLeft = strict ? v < threshold[node] : v <= threshold[node]
      node = goLeft ? left[node] : right[node]
    }
  }

  return {
    run (ws, n, W) {
      for (let i = 0, r = 0; i < n; i++, r += W) {
        for (let j = 0; j < nIn; j++) {
          const raw = ws[r + inC[j]]
          const v = cmp32 ? fround(raw) : raw
          if (refuseOverflow && cmp32 && !Number.isFinite(v) && Number.isFinite(raw)) return i
          x[j] = v
        }
        for (let j = 0; j < k; j++) out[j] = acc32 ? fround(base[j]) : base[j]
        for (let t = 0; t < T; t++) {
          const leaf = leafOf(root[t])
          const o = output[t]
          if (acc32) {
            const s = scale32[t]
            for (let w = 0; w < Wl; w++) out[o + w] = fround(out[o + w] + fround(s * fround(values[w][leaf])))
          } else {
            const s = scale[t]
            for (let w = 0; w < Wl; w++) out[o + w] += s * values[w][leaf]
          }
        }
        for (let j = 0; j < k; j++) ws[r + outC[j]] = average ? (acc32 ? fround(out[j] / divisor) : out[j] / divisor) : out[j]
      }
      return -1
    },
    error (ws, row, W) {
      const j = inC.findIndex((c) => Number.isFinite(ws[row * W + c]) && !Number.isFinite(fround(ws[row * W + c])))
      return new FieldTypeError(`row ${row}: '${step.inputs[Math.max(j, 0)]}' is ${ws[row * W + inC[Math.max(j, 0)]]}, too large for float32; the original model (scikit-learn trees) refuses values outside the float32 range`)
    }
  }
}

// --- registry --------------------------------------------------------------------------------
export const OPS = {
  affine: { versions: [1], bind: bindAffine },
  impute: { versions: [1], bind: bindImpute },
  linear: { versions: [1], bind: bindLinear },
  link: { versions: [1], bind: bindLink },
  one_hot: { versions: [1], bind: bindOneHot },
  ordinal: { versions: [1], bind: bindOrdinal },
  kbins: { versions: [1], bind: bindKbins },
  tree_ensemble: { versions: [1, 2], bind: bindTreeEnsemble }
}

/** The op spec, or IncompatibleBundleError naming the op and version (§4). */
export function getOp (op, version) {
  const spec = Object.hasOwn(OPS, op) ? OPS[op] : null
  if (!spec) throw new IncompatibleBundleError(`op '${op}' unknown to this scorer (known ops: ${Object.keys(OPS).sort().join(', ')})`)
  if (!spec.versions.includes(version)) throw new IncompatibleBundleError(`op '${op}' version ${version} unknown (this scorer reads version ${spec.versions.join(', ')})`)
  return spec
}

export function bindStep (step, ctx) {
  const spec = getOp(step.op, step.op_version)
  try {
    return spec.bind(step, ctx)
  } catch (e) {
    if (e instanceof IncompatibleBundleError || e instanceof BundleFormatError) throw e
    throw new BundleFormatError(`step '${step.name}' (op '${step.op}'): malformed parameters (${e.message})`)
  }
}
