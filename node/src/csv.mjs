// CSV in and out as `tablescore score` reads and writes it (N/A, NA and empty cells are
// missing; cells are text, numbers read with xs:double; output floats as Python's repr,
// missing as an empty cell).

import { InputError } from './errors.mjs'
import { PyFloat, PyInt, pyFloatRepr } from './json.mjs'

/** Parse CSV text (RFC 4180 quoting: a double quote opens a quoted cell only at the start
 * of the cell, as Arrow reads it; tab-separated when the header has more tabs than commas,
 * as the Python reader decides) -> {header, rows: string[][], lines: number[]} (each row's
 * 1-based record number after the header, blank lines not counted). */
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
    if (c === '"' && cell === '') { quoted = true; any = true; i++; continue }
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
  if (!rows.length) throw new InputError('the data file is empty: a CSV needs a header row naming the columns')
  const header = rows[0]
  const twice = [...new Set(header.filter((h, j) => header.indexOf(h) !== j))]
  if (twice.length) throw new InputError(`column${twice.length > 1 ? 's' : ''} ${twice.map((h) => `'${h}'`).join(', ')} appear${twice.length > 1 ? '' : 's'} more than once in the header: which one to read is ambiguous`)
  const data = rows.slice(1)
  for (let r = 0; r < data.length; r++) {
    // (Arrow's rule: a record of another number of fields is ragged; empty lines are skipped)
    if (data[r].length !== header.length) {
      throw new InputError(`row ${r + 1}: ragged line: ${data[r].length} fields where the header has ${header.length}`)
    }
  }
  return { header, rows: data }
}

/** Bytes as UTF-8 text; an InputError naming the first byte that is not UTF-8 (as the
 * Python command line does). */
export function decodeUtf8 (buf, what) {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf)
  } catch {
    let lo = 0; let hi = buf.length // the shortest prefix that fails holds the bad byte last
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      try { new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(0, mid + 1), { stream: true }); lo = mid + 1 } catch { hi = mid }
    }
    let at = Math.min(lo, buf.length - 1)
    // (the sequence the bad byte ends starts at its lead byte, where Python reports it)
    for (let k = at - 1; k >= Math.max(0, at - 3) && buf[k] >= 0x80; k--) {
      if (buf[k] >= 0xc0) { at = k; break }
    }
    throw new InputError(`${what} is not UTF-8 text (byte 0x${buf[at].toString(16).padStart(2, '0')} at offset ${at}): save it as UTF-8 CSV`)
  }
}

const NA = new Set(['', 'NA', 'N/A'])

/** A CSV cell as the value the scorer's input encoding receives (null = missing): its
 * text, as Arrow reads a CSV cell; a number field reads it with xs:double
 * (numberFromText), a string field compares it as it is ("08" is not category "8"). */
export function cellValue (text, field) {
  if (NA.has(text)) return null
  return text
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
