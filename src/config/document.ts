/**
 * What the configuration checks share while they walk the document: whether a value is a mapping, an
 * environment variable's value (unset and empty alike), and how a problem is reported (a path in the
 * document and the text after it).
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
