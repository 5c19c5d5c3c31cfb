// CSV in and out as `tablescore score` reads and writes it (pandas: N/A, NA and empty cells
// are missing; output floats as Python's repr, missing as an empty cell).

import { PyFloat, PyInt, pyFloatRepr } from './json.mjs'

/** Parse CSV text (RFC 4180 quoting; tab-separated when the header has more tabs than
 * commas, as the Python reader decides) -> {header, rows: string[][]}. */
export function parseCsv (text) {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
  const nl = text.indexOf('\n')
  const head = nl < 0 ? text : text.slice(0, nl)
  const sep = (head.split('\t').length > head.split(',').length) ? '\t' : ','
  const rows = []
  let row = []; let cell = ''; let i = 0; let quoted = false; let any = false
  while (i < text.length) {
    const c = text[i]
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') { cell += '"'; i += 2; continue }
        quoted = false; i++; continue
      }
      cell += c; i++; continue
    }
    if (c === '"') { quoted = true; any = true; i++; continue }
    if (c === sep) { row.push(cell); cell = ''; any = true; i++; continue }
    if (c === '\n' || c === '\r') {
      if (any || cell !== '' || row.length) { row.push(cell); rows.push(row) }
      row = []; cell = ''; any = false
      i += (c === '\r' && text[i + 1] === '\n') ? 2 : 1
      continue
    }
    cell += c; any = true; i++
  }
  if (any || cell !== '' || row.length) { row.push(cell); rows.push(row) }
  if (!rows.length) throw new Error('the data file is empty: a CSV needs a header row naming the columns')
  return { header: rows[0], rows: rows.slice(1) }
}

const NA = new Set(['', 'NA', 'N/A'])
// what pandas' float parser takes beyond xs:double
const PANDAS_SPECIAL = { inf: Infinity, '+inf': Infinity, '-inf': -Infinity, Inf: Infinity, '-Inf': -Infinity, nan: NaN, NaN: NaN, '-nan': NaN, Infinity, '-Infinity': -Infinity, '+Infinity': Infinity }

/** A CSV cell as the value the scorer's input encoding receives (null = missing). */
export function cellValue (text, field) {
  if (NA.has(text)) return null
  if (field.type === 'string') {
    if (field.categories && !field.categories.includes(text) && /^[+-]?[0-9]+(\.0*)?$/.test(text)) return Number(text)
    return text
  }
  if (Object.hasOwn(PANDAS_SPECIAL, text.trim())) return PANDAS_SPECIAL[text.trim()]
  return text // numberFromText reads it (xs:double)
}

function quote (s) {
  return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s
}

/** One output value as pandas' to_csv writes it. `typed`: the manifest's typed class
 * values (PyInt / PyFloat), for labels. */
export function formatValue (v, typedClass) {
  if (v === null || v === undefined) return ''
  if (typedClass instanceof PyInt) return typedClass.text
  if (typedClass instanceof PyFloat) return pyFloatRepr(typedClass.value)
  if (typeof v === 'number') return v !== v ? '' : pyFloatRepr(v)
  if (typeof v === 'boolean') return v ? 'True' : 'False'
  return quote(String(v))
}

export function formatCsv (names, columns, outputs) {
  const lines = [names.map(quote).join(',')]
  const n = names.length ? columns[names[0]].length : 0
  const classIndex = outputs.map((o) => (o.kind === 'label' ? new Map(o.classes.map((c, i) => [c, o.typedClasses ? o.typedClasses[i] : null])) : null))
  for (let i = 0; i < n; i++) {
    lines.push(names.map((name, j) => {
      const v = columns[name][i]
      return formatValue(v, classIndex[j] && v !== null ? classIndex[j].get(v) : null)
    }).join(','))
  }
  return lines.join('\n') + '\n'
}
