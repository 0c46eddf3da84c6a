/**
 * A small path syntax to reach a value inside a claim set:
 *
 *   email                       top-level claim
 *   realm_access.roles          nested object member
 *   groups[0]                   array member
 *   ["https://example.com/roles"]   a claim whose name contains dots, slashes or brackets
 *   resource_access["my.client"].roles
 *   resource_access[$azp].roles     the member named by the token's own top-level azp claim (a string)
 *
 * Inside ["..."] the name is a JSON string (so \" and \\ escape). Paths are parsed once, when the
 * configuration is loaded; reading a path that points at nothing yields undefined, never an error.
 */

/** A member named by the value of a top-level claim of the same token: [$azp]. */
export interface ClaimReference {
  claim: string
}

export type PathSegment = string | number | ClaimReference

const REFERENCE = /^\$([A-Za-z0-9_:@-]+)$/

export class ClaimPathError extends Error {}

const NAME = /^[A-Za-z0-9_$:@-]+/

export function parseClaimPath (path: string): PathSegment[] {
  const segments: PathSegment[] = []
  let i = 0
  let expectSeparator = false
  while (i < path.length) {
    const ch = path[i]
    if (ch === '[') {
      const close = findClosingBracket(path, i)
      const inner = path.slice(i + 1, close)
      const reference = REFERENCE.exec(inner)
      if (/^\d+$/.test(inner)) {
        segments.push(Number(inner))
      } else if (reference !== null) {
        segments.push({ claim: reference[1] as string })
      } else if (inner.startsWith('"')) {
        let name: unknown
        try { name = JSON.parse(inner) } catch { name = undefined }
        if (typeof name !== 'string' || name.length === 0) throw new ClaimPathError(`invalid quoted name at position ${i} in claim path ${JSON.stringify(path)}`)
        segments.push(name)
      } else {
        throw new ClaimPathError(`expected an index, a quoted name or a $claim reference inside [] at position ${i} in claim path ${JSON.stringify(path)}`)
      }
      i = close + 1
      expectSeparator = true
      continue
    }
    if (expectSeparator) {
      if (ch !== '.') throw new ClaimPathError(`expected "." or "[" at position ${i} in claim path ${JSON.stringify(path)}`)
      i++
    }
    const match = NAME.exec(path.slice(i))
    if (match === null) throw new ClaimPathError(`expected a claim name at position ${i} in claim path ${JSON.stringify(path)}`)
    segments.push(match[0])
    i += match[0].length
    expectSeparator = true
  }
  if (segments.length === 0) throw new ClaimPathError('a claim path must not be empty')
  return segments
}

function findClosingBracket (path: string, open: number): number {
  let inString = false
  for (let j = open + 1; j < path.length; j++) {
    const c = path[j]
    if (inString) {
      if (c === '\\') j++
      else if (c === '"') inString = false
    } else if (c === '"') {
      inString = true
    } else if (c === ']') {
      return j
    }
  }
  throw new ClaimPathError(`unclosed "[" at position ${open} in claim path ${JSON.stringify(path)}`)
}

/** Reads a parsed path; only own properties of plain objects and arrays are followed. */
export function readClaimPath (claims: Record<string, unknown>, path: readonly PathSegment[]): unknown {
  let current: unknown = claims
  for (const segment of path) {
    if (typeof segment === 'number') {
      if (!Array.isArray(current) || segment >= current.length) return undefined
      current = current[segment]
    } else {
      // A reference names the member by a top-level claim's string value (own properties only, like the rest).
      const name = typeof segment === 'string' ? segment : Object.hasOwn(claims, segment.claim) ? claims[segment.claim] : undefined
      if (typeof name !== 'string' || name === '') return undefined
      if (typeof current !== 'object' || current === null || Array.isArray(current) || !Object.hasOwn(current, name)) return undefined
      current = (current as Record<string, unknown>)[name]
    }
  }
  return current
}
