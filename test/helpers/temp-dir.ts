/**
 * A private temporary folder with the given files, removed at teardown. Unlike t.testdir() (a fixed path
 * under .tap/fixtures), two runs of the same test at once cannot delete each other's files.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'

export function tempDir (t: Test, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'oidc-verifier-test-'))
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}
