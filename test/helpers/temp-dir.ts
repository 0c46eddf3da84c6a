/**
 * A private temporary folder with the given files, removed at teardown. Unlike t.testdir() (a fixed path
 * under .tap/fixtures), two runs of the same test at once cannot delete each other's files.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'

export function tempDir (t: Test, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'oidc-verifier-test-'))
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A certificate and its key, as files. */
export interface CertificatePair { cert: string, key: string }

/** A folder standing for a mounted Secret: tls.crt and tls.key, replaced in place by `place`. */
export function mountedSecret (t: Test, pair: CertificatePair): { certFile: string, keyFile: string, place: (pair: CertificatePair) => void } {
  const dir = tempDir(t)
  const certFile = join(dir, 'tls.crt')
  const keyFile = join(dir, 'tls.key')
  const place = (next: CertificatePair): void => {
    copyFileSync(next.cert, certFile)
    copyFileSync(next.key, keyFile)
  }
  place(pair)
  return { certFile, keyFile, place }
}
