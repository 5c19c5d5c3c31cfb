// JSON as Python's json module reads and writes it: the fingerprint (bundle-format §4) hashes
// Python's canonical form, which keeps integers and floats apart (1 vs 1.0) and formats
// floats like Python's repr. JSON.parse loses that, so manifests are parsed here.

import { BundleFormatError } from './errors.mjs'

// A JSON number as read: `int` holds the exact decimal text of an integer token (Python ints
// are unbounded), `float` the double of a token with a fraction or exponent.
export class PyInt {
  constructor (text) { this.text = text }
}
export class PyFloat {
  constructor (value) { this.value = value }
}

const WS = new Set([' ', '\t', '\n', '\r'])
const NUMBER = /-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y

/** Parse JSON text; numbers become PyInt / PyFloat; duplicate keys: the last wins (Python).
 * NaN / Infinity literals are refused (bundle-format §2). Nesting over maxDepth is refused. */
export function parseTyped (text, maxDepth = 64) {
  let i = 0
  const fail = (why) => { throw new BundleFormatError(`manifest.json: not valid JSON (${why} at offset ${i})`) }
  const skip = () => { while (i < text.length && WS.has(text[i])) i++ }
  const value = (depth) => {
    skip()
    const c = text[i]
    if (c === '{' || c === '[') {
      if (depth > maxDepth) throw new BundleFormatError(`manifest.json: arrays / objects nested deeper than ${maxDepth} levels`)
      i++
      skip()
      if (c === '[') {
        const arr = []
        if (text[i] === ']') { i++; return arr }
        for (;;) {
          arr.push(value(depth + 1))
          skip()
          if (text[i] === ',') { i++; continue }
          if (text[i] === ']') { i++; return arr }
          fail('expected , or ]')
        }
      }
      const obj = new Map()
      if (text[i] === '}') { i++; return obj }
      for (;;) {
        skip()
        if (text[i] !== '"') fail('expected a key')
        const k = string()
        skip()
        if (text[i] !== ':') fail('expected :')
        i++
        obj.delete(k) // Python keeps the last value, in the position of the first: order is irrelevant here
        obj.set(k, value(depth + 1))
        skip()
        if (text[i] === ',') { i++; continue }
        if (text[i] === '}') { i++; return obj }
        fail('expected , or }')
      }
    }
    if (c === '"') return string()
    if (text.startsWith('true', i)) { i += 4; return true }
    if (text.startsWith('false', i)) { i += 5; return false }
    if (text.startsWith('null', i)) { i += 4; return null }
    NUMBER.lastIndex = i // (sticky, on the whole text: a number of any length)
    const m = NUMBER.exec(text)
    if (!m || m[0] === '' || m[0] === '-') {
      if (/^-?(NaN|Infinity)/.test(text.slice(i, i + 10))) fail('NaN / Infinity are not JSON values (write them as strings)')
      fail('unexpected character')
    }
    i += m[0].length
    if (m[2] === undefined && m[3] === undefined) return new PyInt(m[0] === '-0' ? '0' : m[0])
    return new PyFloat(Number(m[0]))
  }
  const string = () => {
    // JSON.parse of the string token: same escapes and errors as Python's strict decoder
    let j = i + 1
    for (;;) {
      const ch = text.charCodeAt(j)
      if (Number.isNaN(ch)) fail('unterminated string')
      if (ch === 0x22) break
      if (ch < 0x20) fail('control character in string')
      j += ch === 0x5c ? 2 : 1
    }
    const s = JSON.parse(text.slice(i, j + 1))
    i = j + 1
    return s
  }
  const v = value(1)
  skip()
  if (i !== text.length) fail('extra data')
  return v
}

/** The typed tree as plain JS (Map -> object, PyInt / PyFloat -> number). Keys become own
 * properties, as JSON.parse makes them: a key "__proto__" is a key like any other (an
 * assignment would set the object's prototype, and the manifest's missing keys would be
 * read from it). */
export function plain (v) {
  if (v instanceof PyInt) return Number(v.text)
  if (v instanceof PyFloat) return v.value
  if (Array.isArray(v)) return v.map(plain)
  if (v instanceof Map) {
    const o = {}
    for (const [k, x] of v) ownKey(o, k, plain(x))
    return o
  }
  return v
}

/** Set ``o[k] = value`` as an own, enumerable property (never a prototype setter). */
export function ownKey (o, k, value) {
  Object.defineProperty(o, k, { value, enumerable: true, writable: true, configurable: true })
}

/** Python's repr(float): shortest round-trip digits, exponent form below 1e-4 and from 1e16. */
export function pyFloatRepr (x) {
  if (Number.isNaN(x)) return 'nan'
  if (x === Infinity) return 'inf'
  if (x === -Infinity) return '-inf'
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0'
  const [mant, expText] = Math.abs(x).toExponential().split('e')
  const exp = Number(expText)
  const digits = mant.replace('.', '')
  const sign = x < 0 ? '-' : ''
  if (exp >= -5 && exp < 16) {
    // fixed notation (repr switches to exponent form when exp < -4 or exp >= 16)
    if (exp < -4) return sci()
    let s
    if (exp < 0) s = '0.' + '0'.repeat(-exp - 1) + digits
    else if (digits.length <= exp + 1) s = digits + '0'.repeat(exp + 1 - digits.length) + '.0'
    else s = digits.slice(0, exp + 1) + '.' + digits.slice(exp + 1)
    return sign + s
  }
  return sci()
  function sci () {
    const m = digits.length > 1 ? digits[0] + '.' + digits.slice(1) : digits
    const e = Math.abs(exp) < 10 ? '0' + Math.abs(exp) : String(Math.abs(exp))
    return `${sign}${m}e${exp < 0 ? '-' : '+'}${e}`
  }
}

// Python sorts str keys by code point; JS compares UTF-16 units (differs above U+FFFF).
function codePointCompare (a, b) {
  const A = Array.from(a); const B = Array.from(b)
  const n = Math.min(A.length, B.length)
  for (let k = 0; k < n; k++) {
    const d = A[k].codePointAt(0) - B[k].codePointAt(0)
    if (d) return d
  }
  return A.length - B.length
}

/** Python's json.dumps(_finite_json(v), sort_keys=True, separators=(',', ':'),
 * ensure_ascii=False) of a typed tree (bundle-format §4). */
export function canonical (v) {
  if (v === null) return 'null'
  if (v === true) return 'true'
  if (v === false) return 'false'
  if (typeof v === 'string') return JSON.stringify(v)
  if (v instanceof PyInt) return BigInt(v.text).toString()
  if (v instanceof PyFloat) {
    const x = v.value
    if (Number.isNaN(x)) return '"NaN"'
    if (!Number.isFinite(x)) return x > 0 ? '"Infinity"' : '"-Infinity"'
    return pyFloatRepr(x)
  }
  if (typeof v === 'number') return canonical(new PyFloat(v))
  if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']'
  if (v instanceof Map) {
    const keys = [...v.keys()].sort(codePointCompare)
    return '{' + keys.map((k) => JSON.stringify(k) + ':' + canonical(v.get(k))).join(',') + '}'
  }
  throw new TypeError(`not a JSON value: ${v}`)
}
