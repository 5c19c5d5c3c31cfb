// The manifest's JSON Schema (a copy of scorer/schema/manifest.schema.json, published with
// docs/bundle-format.md §2; test/schema.test.mjs checks the copy is current) and the
// validator the bundle reader applies it with: a port of scorer/schema/__init__.py.
//
// It interprets the keywords the schema uses (type, enum, const, pattern, minLength,
// minimum, maximum, items, properties, required, additionalProperties, anyOf, local $ref)
// and refuses a schema with any other keyword. It runs on the typed tree of parseTyped
// (Map, array, PyInt, PyFloat, string, boolean, null), so an 'integer' is a JSON number
// written without fraction or exponent: 1.0 and true are not op versions.

import fs from 'node:fs'
import { BundleFormatError } from './errors.mjs'
import { canonical, PyFloat, PyInt } from './json.mjs'

export const MANIFEST_SCHEMA = JSON.parse(fs.readFileSync(new URL('./manifest.schema.json', import.meta.url), 'utf8'))

const isNum = (v) => v instanceof PyInt || v instanceof PyFloat
const numOf = (v) => (v instanceof PyInt ? Number(v.text) : v.value)
const TYPES = {
  object: (v) => v instanceof Map,
  array: (v) => Array.isArray(v),
  string: (v) => typeof v === 'string',
  integer: (v) => v instanceof PyInt,
  number: isNum,
  boolean: (v) => typeof v === 'boolean',
  null: (v) => v === null
}
const ANNOTATIONS = ['$schema', '$id', '$defs', 'title', 'description']
const KEYWORDS = new Set(['type', 'enum', 'const', 'pattern', 'minLength', 'minimum', 'maximum', 'items',
  'properties', 'required', 'additionalProperties', 'anyOf', '$ref', ...ANNOTATIONS])

const regexCache = new Map()
function regex (p) {
  if (!regexCache.has(p)) regexCache.set(p, new RegExp(p, 'u'))
  return regexCache.get(p)
}

function where (path) {
  let out = ''
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : (out ? `.${p}` : p)
  return out || 'the manifest'
}

/** Schema JSON values (plain JS) as typed-tree text. */
function show (v) {
  let text
  if (v === undefined) text = 'nothing'
  else if (typeof v === 'number') text = String(v)
  else {
    try { text = canonical(v) } catch { text = String(v) }
  }
  return text.length <= 60 ? text : text.slice(0, 57) + '...'
}

/** JSON equality of a typed value and a schema (plain JS) value: true is not 1. */
function same (v, e) {
  if (typeof e === 'number') return isNum(v) && numOf(v) === e
  return v === e
}

function resolve (schema, root) {
  while (schema && typeof schema === 'object' && '$ref' in schema) schema = root.$defs[schema.$ref.slice('#/$defs/'.length)]
  return schema
}

function typeMatches (value, schema, root) {
  schema = resolve(schema, root)
  if (!schema || typeof schema !== 'object' || !('type' in schema)) return false
  const types = Array.isArray(schema.type) ? schema.type : [schema.type]
  return types.some((t) => TYPES[t](value))
}

function describe (schema, root) {
  schema = resolve(schema, root)
  if (typeof schema !== 'object') return schema ? 'anything' : 'nothing'
  if ('enum' in schema) return schema.enum.map((e) => JSON.stringify(e)).join(' or ')
  if ('anyOf' in schema) return schema.anyOf.map((s) => describe(s, root)).join(' or ')
  const t = schema.type ?? 'anything'
  return Array.isArray(t) ? t.join(' or ') : t
}

/** The first violation of `schema` by `value` at `path`, or null. */
function errors (value, schema, path, root) {
  if (schema === true) return null
  if (schema === false) return `${where(path)}: key not allowed`
  const unknown = Object.keys(schema).filter((k) => !KEYWORDS.has(k))
  if (unknown.length) throw new Error(`manifest schema uses unsupported keywords ${unknown.sort().join(', ')}`)
  if ('$ref' in schema) {
    const ref = schema.$ref
    if (!ref.startsWith('#/$defs/')) throw new Error(`manifest schema: only local $refs are supported (${ref})`)
    const err = errors(value, root.$defs[ref.slice('#/$defs/'.length)], path, root)
    if (err) return err
  }
  if ('anyOf' in schema) {
    const errs = schema.anyOf.map((s) => errors(value, s, path, root))
    if (errs.every((e) => e)) {
      const typed = errs.filter((e, i) => typeMatches(value, schema.anyOf[i], root))
      return typed.length
        ? typed[0]
        : `${where(path)}: ${show(value)} is not allowed here (expected ${schema.anyOf.map((s) => describe(s, root)).join(' or ')})`
    }
  }
  if ('type' in schema) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type]
    if (!types.some((t) => TYPES[t](value))) return `${where(path)}: must be ${types.join(' or ')}, not ${show(value)}`
  }
  if ('const' in schema && !same(value, schema.const)) return `${where(path)}: must be ${JSON.stringify(schema.const)}, not ${show(value)}`
  if ('enum' in schema && !schema.enum.some((e) => same(value, e))) {
    return `${where(path)}: ${show(value)} is not one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}`
  }
  if (typeof value === 'string') {
    if ('minLength' in schema && [...value].length < schema.minLength) return `${where(path)}: must not be empty`
    if ('pattern' in schema && !regex(schema.pattern).test(value)) return `${where(path)}: ${show(value)} does not match ${schema.pattern}`
  }
  if (isNum(value)) {
    const x = value instanceof PyInt ? BigInt(value.text) : value.value
    const cmp = (bound) => (typeof x === 'bigint' && Number.isInteger(bound) ? Number(x - BigInt(bound)) : Number(x) - bound)
    if ('minimum' in schema && cmp(schema.minimum) < 0) return `${where(path)}: ${show(value)} is below ${schema.minimum}`
    if ('maximum' in schema && cmp(schema.maximum) > 0) return `${where(path)}: ${show(value)} is above ${schema.maximum}`
  }
  if (Array.isArray(value) && 'items' in schema) {
    for (let i = 0; i < value.length; i++) {
      const err = errors(value[i], schema.items, [...path, i], root)
      if (err) return err
    }
  }
  if (value instanceof Map) {
    for (const key of schema.required || []) if (!value.has(key)) return `${where(path)}: required key '${key}' is missing`
    const props = schema.properties || {}
    const extra = schema.additionalProperties ?? true
    for (const [key, item] of value) {
      const err = errors(item, Object.hasOwn(props, key) ? props[key] : extra, [...path, key], root)
      if (err) return err
    }
  }
  return null
}

/** Refuse a typed manifest (parseTyped's tree) unless it satisfies the manifest schema:
 * a BundleFormatError naming the first offending key, e.g. `steps[0].op_version: must be
 * integer, not 1.0`. */
export function validateManifest (typed, where = 'manifest.json') {
  const err = errors(typed, MANIFEST_SCHEMA, [], MANIFEST_SCHEMA)
  if (err) throw new BundleFormatError(`${where}: ${err}`)
}
