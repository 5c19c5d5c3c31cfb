#!/usr/bin/env node
// node node/bin/tablescore.mjs score BUNDLE --data IN.csv --out OUT.csv
// Exit codes as the Python command line: 2 bad usage or input, 3 bad bundle, 4 output not
// writable, 1 verification failed.
import fs from 'node:fs'
import path from 'node:path'
import { cellValue, decodeUtf8, formatCsv, parseCsv } from '../src/csv.mjs'
import { BundleFormatError, IncompatibleBundleError, InputError, IntegrityError, VerificationError } from '../src/errors.mjs'
import { ownKey } from '../src/json.mjs'
import { load } from '../src/model.mjs'

const USAGE = 'usage: tablescore.mjs score BUNDLE --data IN.csv --out OUT.csv'

async function score (argv) {
  const opts = { positional: [] }
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--data' || argv[i] === '--out') opts[argv[i].slice(2)] = argv[++i]
    else opts.positional.push(argv[i])
  }
  if (opts.positional.length !== 1 || !opts.data || !opts.out) throw Object.assign(new Error(USAGE), { exit: 2 })
  if (!opts.out.toLowerCase().endsWith('.csv')) throw Object.assign(new Error(`--out: only .csv is written here, not '${opts.out}'`), { exit: 2 })
  const model = await load(opts.positional[0])
  let bytes
  try { bytes = fs.readFileSync(opts.data) } catch (e) {
    throw Object.assign(new Error(`data file '${opts.data}' cannot be read (${e.code})`), { exit: 2 })
  }
  const { header, rows } = parseCsv(decodeUtf8(bytes, `data file '${opts.data}'`))
  const cols = {}
  for (const f of model.inputs) {
    const j = header.indexOf(f.name)
    if (j < 0) continue // the scorer names every missing field
    ownKey(cols, f.name, rows.map((r) => cellValue(r[j] ?? '', f)))
  }
  const res = model.scoreColumns(cols)
  // atomic: a temporary sibling, then rename
  const tmp = path.join(path.dirname(opts.out), `.${path.basename(opts.out)}.tmp-${process.pid}`)
  try {
    fs.mkdirSync(path.dirname(opts.out), { recursive: true }) // (as the Python command does)
    fs.writeFileSync(tmp, formatCsv(model.outputNames, res, model.outputs))
    fs.renameSync(tmp, opts.out)
  } catch (e) {
    fs.rmSync(tmp, { force: true })
    throw Object.assign(new Error(`cannot write '${opts.out}' (${e.code || e.message})`), { exit: 4 })
  }
  console.log(`scored ${rows.length} rows with ${model.name} v${model.version} -> ${opts.out}`)
}

const [cmd, ...rest] = process.argv.slice(2)
try {
  if (cmd !== 'score') throw Object.assign(new Error(USAGE), { exit: 2 })
  await score(rest)
} catch (e) {
  console.error(`tablescore: ${e.message}`)
  const code = e.exit ?? (e instanceof VerificationError ? 1
    : e instanceof InputError ? 2
      : (e instanceof BundleFormatError || e instanceof IncompatibleBundleError || e instanceof IntegrityError) ? 3 : 70)
  if (code === 70) console.error(e.stack)
  process.exit(code)
}
