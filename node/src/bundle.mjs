// Reading a bundle directory (docs/bundle-format.md §1-§4): manifest limits, format tag,
// schema version, fingerprint, table hashes, Parquet tables.

import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { parquetMetadata, parquetReadObjects } from 'hyparquet'
import { compressors } from 'hyparquet-compressors'
import { BundleFormatError, IncompatibleBundleError, IntegrityError } from './errors.mjs'
import { canonical, ownKey, parseTyped, plain } from './json.mjs'
import { validateManifest } from './schema.mjs'

export const FORMAT = 'tablescore-bundle'
export const READS_MAJOR = 1
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024
export const MAX_MANIFEST_DEPTH = 64

/** [major, minor] of "M.m" (ASCII digits, no sign, no leading zeros). */
export function parseSchemaVersion (text) {
  const m = typeof text === 'string' && /^(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})$/.exec(text)
  if (!m) throw new BundleFormatError(`schema_version ${JSON.stringify(text)} is not 'major.minor'`)
  return [Number(m[1]), Number(m[2])]
}

export function checkSchemaVersion (text) {
  const [major, minor] = parseSchemaVersion(text)
  if (major > READS_MAJOR) {
    throw new IncompatibleBundleError(`bundle schema ${major}.${minor} is newer than this scorer (reads ${READS_MAJOR}.x)`)
  }
  if (major < READS_MAJOR) {
    throw new IncompatibleBundleError(`bundle schema ${major}.${minor} is older than this scorer supports (reads ${READS_MAJOR}.x)`)
  }
}

/** Fingerprint of a typed manifest (a Map from parseTyped): sha256 of the canonical JSON
 * without `fingerprint` and `created`. */
export function fingerprintOf (typed) {
  const body = new Map([...typed].filter(([k]) => k !== 'fingerprint' && k !== 'created'))
  return createHash('sha256').update(canonical(body), 'utf8').digest('hex')
}

export function sha256File (p) {
  return createHash('sha256').update(fs.readFileSync(p)).digest('hex')
}

/** Read and check manifest.json; returns {typed, manifest} (manifest: plain JS). */
export function readManifest (root) {
  let st
  try { st = fs.statSync(root) } catch { st = null }
  if (!st || !st.isDirectory()) throw new BundleFormatError(`bundle '${root}' is not a directory`)
  const mpath = path.join(root, 'manifest.json')
  let mst
  try { mst = fs.statSync(mpath) } catch { mst = null }
  // (a directory or a FIFO by that name is no manifest: opening a FIFO would block)
  if (!mst || !mst.isFile()) throw new BundleFormatError(`bundle '${root}' has no manifest.json`)
  const fd = fs.openSync(mpath, 'r')
  let data
  try {
    const size = fs.fstatSync(fd).size
    if (size > MAX_MANIFEST_BYTES) throw new BundleFormatError(`${mpath}: ${size} bytes, over the limit of ${MAX_MANIFEST_BYTES} bytes for a manifest`)
    const buf = Buffer.alloc(Math.min(size, MAX_MANIFEST_BYTES) + 1)
    const n = fs.readSync(fd, buf, 0, buf.length, 0)
    if (n > MAX_MANIFEST_BYTES) throw new BundleFormatError(`${mpath}: over the limit of ${MAX_MANIFEST_BYTES} bytes for a manifest`)
    data = buf.subarray(0, n)
  } finally { fs.closeSync(fd) }
  let text
  try { text = new TextDecoder('utf-8', { fatal: true }).decode(data) } catch (e) {
    throw new BundleFormatError(`${mpath}: not valid JSON (not UTF-8)`)
  }
  if (text.charCodeAt(0) === 0xfeff) throw new BundleFormatError(`${mpath}: not valid JSON (a byte order mark)`)
  const typed = parseTyped(text, MAX_MANIFEST_DEPTH)
  if (!(typed instanceof Map) || typed.get('format') !== FORMAT) {
    throw new BundleFormatError(`${mpath}: 'format' is not '${FORMAT}'`)
  }
  checkSchemaVersion(typed.get('schema_version')) // the major version first
  validateManifest(typed, mpath) // scorer/schema/manifest.schema.json
  const manifest = plain(typed)
  manifest.tables = manifest.tables ?? {}
  for (const s of manifest.steps) {
    s.inputs = s.inputs ?? []
    s.outputs = s.outputs ?? []
  }
  return { typed, manifest }
}

/** `rel` if it is a plain relative path inside a bundle (`tables/x.parquet`): a
 * BundleFormatError for a non-string or empty path, an absolute path, a `..`, `.` or empty
 * part, a backslash or a NUL (§1; checked as text, before any file is touched: a symlink in
 * the bundle cannot make a path that looks inside point outside). */
export function checkTablePath (rel) {
  if (typeof rel !== 'string' || rel === '' || rel.startsWith('/') || rel.includes('\\') ||
      rel.includes('\0') || rel.split('/').some((p) => p === '' || p === '.' || p === '..')) {
    throw new BundleFormatError(`table path ${JSON.stringify(rel)} is not a plain relative path inside the bundle directory`)
  }
  return rel
}

/** Parquet bytes -> {column: array} (int64 as Number, strings as string / null).
 * `exactInts`: an int64 beyond 2^53 stays a BigInt (the verification table: a label class
 * such as 2^53 + 1 must not compare equal to its rounded neighbour); parameter tables take
 * Numbers only (their kernels do Number arithmetic). */
export async function parseParquetAsync (buf, rel = '<table>', { exactInts = false } = {}) {
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)
  let meta
  try { meta = parquetMetadata(ab) } catch (e) {
    throw new BundleFormatError(`table '${rel}' is not readable Parquet (${e.message})`)
  }
  const names = meta.schema.slice(1).map((s) => s.name)
  // the footer's row count is the file's word, not the rows its data holds: it must be the
  // sum of its row groups' (pyarrow reads the groups), and it sizes nothing before they are
  // read (a crafted count would allocate without bound)
  const declared = Number(meta.num_rows)
  const inGroups = (meta.row_groups || []).reduce((s, g) => s + Number(g.num_rows), 0)
  if (!Number.isSafeInteger(declared) || declared < 0 || declared !== inGroups) {
    throw new BundleFormatError(`table '${rel}' is not readable Parquet (its footer declares ${meta.num_rows} rows, its row groups ${inGroups})`)
  }
  const cols = Object.fromEntries(names.map((n) => [n, []]))
  if (declared === 0) return cols
  let rows
  try {
    rows = await parquetReadObjects({ file: ab, compressors, rowFormat: 'object', metadata: meta })
  } catch (e) {
    throw new BundleFormatError(`table '${rel}' is not readable Parquet (${e.message})`)
  }
  if (rows.length !== declared) {
    throw new BundleFormatError(`table '${rel}' is not readable Parquet (${rows.length} rows read, ${declared} declared)`)
  }
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]
    for (let j = 0; j < names.length; j++) {
      const v = r[names[j]]
      cols[names[j]][i] = typeof v === 'bigint' ? intValue(v, exactInts) : (v === undefined ? null : v)
    }
  }
  return cols
}

const intValue = (v, exact) => {
  const x = Number(v)
  return exact && !Number.isSafeInteger(x) ? v : x
}

export async function readTableAsync (root, rel, entries, verify = true, { exactInts = false } = {}) {
  if (!Object.hasOwn(entries, rel)) throw new BundleFormatError(`table '${rel}' is referenced but not listed in the manifest`)
  checkTablePath(rel)
  const rootReal = fs.realpathSync(root)
  const p = path.resolve(rootReal, rel)
  let real
  try { real = fs.realpathSync(p) } catch { throw new BundleFormatError(`table '${rel}' is missing from the bundle`) }
  if (!real.startsWith(rootReal + path.sep)) throw new BundleFormatError(`table path '${rel}' escapes the bundle directory`)
  if (!fs.statSync(real).isFile()) throw new BundleFormatError(`table '${rel}' is missing from the bundle`)
  const buf = fs.readFileSync(real)
  if (verify) {
    const digest = createHash('sha256').update(buf).digest('hex')
    if (digest !== entries[rel].sha256) {
      throw new IntegrityError(`table '${rel}' does not match its sha256 in the manifest: it was changed after export`)
    }
  }
  return parseParquetAsync(buf, rel, { exactInts })
}

/** Read and check a bundle: manifest, fingerprint, every table's sha256. Returns
 * {manifest, typed, steps: [{...step, tables: {role: columns}}], verification}. */
export async function readBundle (root, { verifyHashes = true } = {}) {
  const { typed, manifest } = readManifest(root)
  if (verifyHashes && manifest.fingerprint !== fingerprintOf(typed)) {
    throw new IntegrityError(`bundle '${root}': manifest fingerprint mismatch (manifest edited after export)`)
  }
  const entries = manifest.tables
  const steps = []
  for (const s of manifest.steps) {
    const tables = {}
    for (const [role, rel] of Object.entries(s.tables || {})) tables[role] = await readTableAsync(root, rel, entries, verifyHashes)
    steps.push({ ...s, params: s.params || {}, tables })
  }
  let verification = null
  const v = manifest.verification
  if (v) {
    const vt = await readTableAsync(root, v.table, entries, verifyHashes, { exactInts: true })
    verification = { inputs: {}, expected: {}, absTol: Number(v.abs_tol), relTol: Number(v.rel_tol) }
    for (const [k, col] of Object.entries(vt)) {
      if (k.startsWith('input:')) ownKey(verification.inputs, k.slice(6), col)
      else if (k.startsWith('expected:')) ownKey(verification.expected, k.slice(9), col)
    }
  }
  return { manifest, typed, steps, verification }
}
