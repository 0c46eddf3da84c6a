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

/** The variable's value, or undefined when it is unset or empty. */
export function envValue (env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name]
  return value === undefined || value === '' ? undefined : value
}
