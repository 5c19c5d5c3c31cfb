// tablescore bundles in Node.js: load(path) -> Model; model.predict(rows).
export { load, Model, firstMismatch, numberFromText } from './model.mjs'
export { readBundle, readManifest, fingerprintOf, checkSchemaVersion, checkTablePath, READS_MAJOR } from './bundle.mjs'
export { validateManifest } from './schema.mjs'
export { canonical, parseTyped, pyFloatRepr } from './json.mjs'
export { OPS, getOp } from './ops.mjs'
export * from './errors.mjs'
