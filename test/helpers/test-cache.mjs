/**
 * The tests' caches on disk, in node_modules/.cache/oidc-verifier-tests/ (gone with node_modules, so every
 * `npm ci` starts them afresh): what one test process computed that the next can read instead (the loader's
 * transpiled modules, test/helpers/ts-hooks.mjs; the RSA key pool, test/helpers/tokens.ts; typebox and jose
 * bundled, test/helpers/package-bundles.mjs). An .mjs file, so that the loader's hooks can import it too. A cache that cannot be read or written only costs time.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import process from 'node:process'
import { URL, fileURLToPath } from 'node:url'

export const TEST_CACHE = fileURLToPath(new URL('../../node_modules/.cache/oidc-verifier-tests/', import.meta.url))

/** The text kept in `file`, or undefined when there is none (yet). */
export function readCached (file) {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return undefined
  }
}

/**
 * Keeps `text` in `file`: written whole under another name, then renamed, so that a test process reading it
 * at the same time sees all of it or nothing.
 */
export function writeCached (file, text) {
  try {
    mkdirSync(dirname(file), { recursive: true })
    const partial = `${file}.${process.pid}.tmp`
    writeFileSync(partial, text)
    renameSync(partial, file)
  } catch { /* a read-only tree: computed again next time */ }
}
