/**
 * What the configuration checks share while they walk the document: whether a value is a mapping, an
 * environment variable's value (unset and empty alike), and how a problem is reported (a path in the
 * document and the text after it). Resolution shares defined(): the options a section sets, without the
 * undefined ones.
 */

export type Path = ReadonlyArray<string | number>
export type Reporter = (path: Path, text: string) => void

export function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * The variable's value, or undefined when it is unset or empty. Own properties only: process.env inherits from
 * Object.prototype, so a name such as "constructor" or "toString" (a configuration's clientSecretEnv) would
 * otherwise read a function.
 */
export function envValue (env: NodeJS.ProcessEnv, name: string): string | undefined {
  if (!Object.hasOwn(env, name)) return undefined
  const value: unknown = env[name]
  return typeof value !== 'string' || value === '' ? undefined : value
}

/** The options set in a section, without those that are undefined (spread over defaults, they keep them). */
export function defined<T extends object> (value: T | undefined): Partial<T> {
  const out: Partial<T> = {}
  if (value === undefined) return out
  for (const [key, v] of Object.entries(value)) {
    if (v !== undefined) (out as Record<string, unknown>)[key] = v
  }
  return out
}
