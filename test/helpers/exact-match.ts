/**
 * t.match on a list checks only the elements the pattern lists (and an empty pattern list matches any list):
 * a list of problems or log lines with an extra entry would pass. This checks the count, then each entry.
 */
import type { Test } from 'tap'

export function matchExactly (t: Test, list: readonly unknown[], patterns: readonly unknown[], message?: string): void {
  t.equal(list.length, patterns.length, `${message ?? 'entries'}: ${list.length} (${list.map((item) => typeof item === 'string' ? item : JSON.stringify(item)).join(' | ').slice(0, 500)})`)
  t.match(list, patterns, message ?? 'each entry as expected')
}
