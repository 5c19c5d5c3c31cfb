// Where make_fixtures.py wrote the bundles and vectors (make test writes node/.fixtures).
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const FIXTURES = process.env.TABLESCORE_NODE_FIXTURES ||
  path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '.fixtures')

const indexPath = path.join(FIXTURES, 'index.json')
if (!fs.existsSync(indexPath)) {
  throw new Error(`no fixtures at ${FIXTURES}: run 'make test' or 'python node/test/make_fixtures.py ${FIXTURES}'`)
}
export const INDEX = JSON.parse(fs.readFileSync(indexPath, 'utf8'))
export const fixture = (...p) => path.join(FIXTURES, ...p)

// vectors.json values: null = missing, "Infinity" / "-Infinity" = +-inf
export const vecValue = (v) => (v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : v)
