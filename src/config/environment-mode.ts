/**
 * Environment-only (single issuer) mode: without a configuration file, one issuer is configured from OIDC_*
 * variables (and callers from CALLER_KEY_HASHES). Here are those variables and the document they make, which
 * is then checked like a file's; problems name the variables (src/config/schema-check.ts, envLabel).
 */
import { envValue } from './document.js'
import { callersFromEnv } from './operations.js'
import { DEFAULT_ENV_ISSUER_ID } from './schema.js'

/** The source of messages about the environment (and of Config.source in environment-only mode). */
export const ENVIRONMENT = 'environment'

/** The environment variables of environment-only (single issuer) mode, by issuer option. */
export const ENV_ISSUER_VARS: Readonly<Record<string, string>> = {
  id: 'OIDC_ISSUER_ID',
  issuer: 'OIDC_ISSUER',
  audiences: 'OIDC_AUDIENCE',
  algorithms: 'OIDC_ALGORITHMS',
  jwksUri: 'OIDC_JWKS_URI',
  decryptionKeys: 'OIDC_DECRYPTION_KEY_FILE'
}

/** The document of environment-only mode: a single issuer from OIDC_* variables. */
export function environmentDocument (env: NodeJS.ProcessEnv): unknown {
  const list = (value: string): string[] => value.split(',').map((item) => item.trim())
  const issuer: Record<string, unknown> = {
    id: envValue(env, 'OIDC_ISSUER_ID') ?? DEFAULT_ENV_ISSUER_ID,
    issuer: envValue(env, 'OIDC_ISSUER')
  }
  const audience = envValue(env, 'OIDC_AUDIENCE')
  if (audience !== undefined) issuer.audiences = list(audience)
  const algorithms = envValue(env, 'OIDC_ALGORITHMS')
  if (algorithms !== undefined) issuer.algorithms = list(algorithms)
  const jwksUri = envValue(env, 'OIDC_JWKS_URI')
  if (jwksUri !== undefined) issuer.jwksUri = jwksUri
  const keyFiles = envValue(env, 'OIDC_DECRYPTION_KEY_FILE')
  if (keyFiles !== undefined) issuer.decryptionKeys = list(keyFiles)
  const callers = callersFromEnv(env)
  return callers === undefined ? { issuers: [issuer] } : { callers, issuers: [issuer] }
}
