/**
 * The one table of error codes. Every rejection the service gives is born here, with a stable code,
 * an HTTP status, a message that is safe to show to anyone (it never contains input) and a hint for the
 * operator. openapi.yaml lists the same codes; test/openapi.test.ts keeps the two equal.
 *
 * Families, so that a caller can act on the status alone:
 *   token       401  the token is not acceptable: reject the user
 *   caller      403  the calling service is not authenticated (X-Api-Key): fix my credentials
 *   forbidden   403  the token is good but fails a forward-auth requirement of the route: deny the request
 *   request     4xx  the caller's request is wrong: fix the request
 *   unavailable 503  we cannot decide right now: retry later (Retry-After is set)
 *   internal    500  a bug: never caused by input
 */

import type { IssuerDifference } from './core/near-issuer.js'

export type ErrorFamily = 'token' | 'caller' | 'forbidden' | 'request' | 'unavailable' | 'internal'

export interface ErrorDefinition {
  readonly status: number
  readonly family: ErrorFamily
  readonly message: string
  readonly hint: string
}

export const ERROR_CODES = {
  // token family: 401, WWW-Authenticate: Bearer error="invalid_token"
  token_malformed: {
    status: 401,
    family: 'token',
    message: 'The token is not a well-formed compact JWS (three base64url segments of JSON objects and a signature).',
    hint: 'Send the raw ID token exactly as the provider issued it, without quotes, whitespace or a "Bearer" prefix inside the body.'
  },
  token_too_large: {
    status: 401,
    family: 'token',
    message: 'The token is larger than the configured maximum size.',
    hint: 'ID tokens are normally under 4 KiB. Raise server.maxTokenBytes only if your provider really issues larger tokens.'
  },
  token_encrypted: {
    status: 401,
    family: 'token',
    message: 'The token is an encrypted JWT (JWE), and no issuer is configured to decrypt ID tokens.',
    hint: 'Give the issuer decryptionKeys (the private keys the provider encrypts to), or configure the client at the provider to issue unencrypted ID tokens (no id_token_encrypted_response_alg).'
  },
  token_not_encrypted: {
    status: 401,
    family: 'token',
    message: 'The ID token is not encrypted, and its issuer accepts only encrypted ID tokens.',
    hint: 'The issuer has requireEncryption: true. Have the client at the provider encrypt its ID tokens (id_token_encrypted_response_alg and enc), or set requireEncryption: false if unencrypted ones are expected; where encryption was agreed, an unencrypted ID token did not come the way it should (OpenID Connect Core §3.1.3.7 step 1).'
  },
  token_decryption_failed: {
    status: 401,
    family: 'token',
    // One code and message for every decryption failure: the answer must not tell an attacker which step failed.
    message: 'The encrypted token could not be decrypted.',
    hint: 'Operators: the provider must encrypt to a key in the issuer\'s decryptionKeys with an algorithm allowed by keyManagementAlgorithms and contentEncryptionAlgorithms; the debug log names the step that failed.'
  },
  token_not_signed: {
    status: 401,
    family: 'token',
    message: 'The encrypted token does not contain a signed ID token.',
    hint: 'Encrypted ID tokens must be signed, then encrypted (a nested JWT): anyone can encrypt to a public key, so only the inner signature proves who issued it.'
  },
  issuer_tenant_mismatch: {
    status: 401,
    family: 'token',
    message: 'The token\'s issuer does not belong to its tenant, or it was signed by a key of another issuer.',
    hint: 'For a {tenantid} issuer the tid claim must be a tenant id (GUID), iss must be the template with that tid, and the signing key\'s "issuer", when present, must name the same issuer.'
  },
  tenant_not_allowed: {
    status: 401,
    family: 'token',
    message: 'The token\'s tenant is not one of the tenants allowed for its issuer.',
    hint: 'Operators: add the tenant (Entra tid, Google hd) to the issuer\'s allowedTenants if its users should be accepted.'
  },
  issuer_unknown: {
    status: 401,
    family: 'token',
    message: 'The token was issued by an issuer that is not configured.',
    hint: 'Compare the token\'s "iss" claim with the configured issuers[].issuer values (oidc-verifier verify - shows both); they must match exactly, including scheme and trailing slash. When "nearIssuer" is present it names the configured issuer the token nearly matches, and "issuerDifference" how they differ (trailing_slash, letter_case, scheme, port, path, or token_version: an Entra ID v1 token (its iss names the sts host of the Entra cloud, a v2 token the login host) at an issuer configured for v2 tokens, or the reverse; which one the provider issues is the accessTokenAcceptedVersion of the application in its manifest). Another spelling of the same provider goes in issuers[].issuerAliases (preset: google accepts both of Google\'s); Entra v1 tokens need an issuer of their own.'
  },
  algorithm_not_allowed: {
    status: 401,
    family: 'token',
    message: 'The token\'s signing algorithm is not allowed for its issuer.',
    hint: 'The "algorithm" field names the token\'s algorithm (when it is a registered one). Add it to the issuer\'s "algorithms" list if the provider really uses it; "none" is never allowed and HMAC needs a client secret.'
  },
  header_invalid: {
    status: 401,
    family: 'token',
    message: 'The token\'s protected header is invalid or names a critical extension this service does not support.',
    hint: 'ID tokens must not carry "crit" extensions nor "cty": "JWT" (a nested token); "kid" and "typ" must be strings.'
  },
  token_type_invalid: {
    status: 401,
    family: 'token',
    message: 'The token is explicitly typed as something other than an ID token.',
    hint: 'Send the ID token, not another kind of JWT issued by the provider.'
  },
  token_is_access_token: {
    status: 401,
    family: 'token',
    message: 'The token is an access token, not an ID token.',
    hint: 'Send the id_token from the token response, not the access_token; access tokens are for resource servers.'
  },
  token_is_logout_token: {
    status: 401,
    family: 'token',
    message: 'The token is a back-channel logout token, not an ID token.',
    hint: 'Logout tokens are delivered to the back-channel logout endpoint and must not be used to log a user in.'
  },
  key_not_found: {
    status: 401,
    family: 'token',
    message: 'No usable signing key of the issuer matches the token (kid and algorithm), in the keys the issuer publishes now or as last fetched.',
    hint: 'Check that the token comes from the configured provider and environment; keys the provider has rotated out are no longer accepted. A key just rotated in is fetched at most once per jwks.unknownKidCooldownSeconds and jwks.unknownKidRefreshesPerMinute times a minute: retry after that.'
  },
  signature_invalid: {
    status: 401,
    family: 'token',
    message: 'The token\'s signature does not verify with the issuer\'s key.',
    hint: 'The token was altered or signed by someone else. Make sure it is passed on byte for byte.'
  },
  claim_missing: {
    status: 401,
    family: 'token',
    message: 'A claim required in an ID token is missing.',
    hint: 'The "claim" field names the claim. ID tokens must carry iss, sub, aud, exp and iat.'
  },
  claim_invalid: {
    status: 401,
    family: 'token',
    message: 'A claim has the wrong type or an impossible value.',
    hint: 'The "claim" field names the claim. Numeric dates must be finite numbers of seconds, and auth_time no later than now (give or take issuers[].clockToleranceSeconds: check the clocks); sub must be a non-empty string of at most 255 characters.'
  },
  claim_value_mismatch: {
    status: 401,
    family: 'token',
    message: 'A claim does not have a value the issuer\'s configuration requires.',
    hint: 'The "claim" field names the claim; see issuers[].requiredClaims in the configuration.'
  },
  audience_mismatch: {
    status: 401,
    family: 'token',
    message: 'The token\'s audience does not match: it is not for a configured client, or it also names an audience that is not trusted.',
    hint: 'Add the client id to the issuer\'s "audiences"; a token issued to another client must not be accepted. If "aud" is an API identifier (Auth0 https://…, Okta api://default, an Entra application ID URI), the caller sent an access token: have it send the ID token, and never add an API identifier to audiences.'
  },
  authorized_party_mismatch: {
    status: 401,
    family: 'token',
    message: 'The token\'s authorized party (azp) is missing, is not a configured client, or is another configured client than the one asked for (audience).',
    hint: 'azp is required when the token has several audiences; add legitimate presenters to the issuer\'s "authorizedParties". A token issued to one of your clients is not accepted for another, even if it lists both.'
  },
  token_expired: {
    status: 401,
    family: 'token',
    message: 'The token has expired.',
    hint: 'The user must log in again or the client must refresh its ID token. "offBySeconds" says how long ago it expired: a few seconds, often, point at the clocks and issuers[].clockToleranceSeconds.'
  },
  token_not_yet_valid: {
    status: 401,
    family: 'token',
    message: 'The token is not valid yet (nbf is in the future).',
    hint: 'Check the clocks of this host and of the provider: "offBySeconds" says how far ahead nbf is.'
  },
  token_issued_in_future: {
    status: 401,
    family: 'token',
    message: 'The token\'s issue time (iat) is in the future.',
    hint: 'Check the clocks of this host and of the provider ("offBySeconds" says how far ahead iat is), or raise issuers[].clockToleranceSeconds.'
  },
  token_too_old: {
    status: 401,
    family: 'token',
    message: 'The token was issued longer ago than the issuer\'s configured maximum token age.',
    hint: 'The user must log in again; see issuers[].maxTokenAgeSeconds ("offBySeconds" says by how much the token is too old).'
  },
  nonce_mismatch: {
    status: 401,
    family: 'token',
    message: 'The token\'s nonce is missing or differs from the nonce sent in the request.',
    hint: 'Send the nonce stored with the user\'s login session; a mismatch can mean a replayed token.'
  },
  auth_time_missing: {
    status: 401,
    family: 'token',
    message: 'A maximum authentication age was requested but the token has no auth_time claim.',
    hint: 'Send max_age (or claims=auth_time) in the authorization request so that the provider includes auth_time.'
  },
  authentication_too_old: {
    status: 401,
    family: 'token',
    message: 'The user authenticated longer ago than the requested maximum authentication age.',
    hint: 'Ask the user to log in again (prompt=login or max_age in the authorization request); "offBySeconds" says by how much the login is too old.'
  },
  at_hash_missing: {
    status: 401,
    family: 'token',
    message: 'An access token was sent for binding but the ID token has no at_hash claim.',
    hint: 'Only send accessToken when the provider issues at_hash (implicit and hybrid flows, or providers that always include it).'
  },
  at_hash_mismatch: {
    status: 401,
    family: 'token',
    message: 'The ID token\'s at_hash does not match the access token sent with it.',
    hint: 'Send the access token from the same token response as the ID token.'
  },
  c_hash_missing: {
    status: 401,
    family: 'token',
    message: 'An authorization code was sent for binding but the ID token has no c_hash claim.',
    hint: 'Send code only with the ID token of a hybrid flow\'s authorization response (response_type code id_token), which must carry c_hash (OpenID Connect Core §3.3.2.11).'
  },
  c_hash_mismatch: {
    status: 401,
    family: 'token',
    message: 'The ID token\'s c_hash does not match the authorization code sent with it.',
    hint: 'Send the code from the same authorization response as the ID token; a mismatch can mean a code substituted by an attacker.'
  },
  token_revoked: {
    status: 401,
    family: 'token',
    message: 'The token has been revoked: its session was logged out at the provider, or an operator revoked it.',
    hint: 'The user must log in again. Operators: revocations come from the provider\'s back-channel logout (POST /backchannel-logout) and from POST /revocations; the info log line "revocation recorded" says which.'
  },
  // caller family: 403, never 401, so that "fix my credentials" is told apart from "reject the user"
  caller_key_missing: {
    status: 403,
    family: 'caller',
    message: 'The request carries no caller API key, and this service requires one.',
    hint: 'Send the calling service\'s API key in the X-Api-Key header (not in Authorization, which carries the ID token).'
  },
  caller_key_invalid: {
    status: 403,
    family: 'caller',
    message: 'The caller API key is not valid for this service.',
    hint: 'Operators: the SHA-256 of the key (printf %s "$KEY" | sha256sum) must be one of callers.keys[].sha256; check the key was not rotated out.'
  },
  caller_not_permitted: {
    status: 403,
    family: 'caller',
    message: 'The calling service is not permitted to use this route.',
    hint: 'Operators: POST /revocations needs a caller key with "revoke: true" in callers.keys[]; without configured caller keys the route is refused.'
  },
  // forbidden family: forward-auth only (403, WWW-Authenticate: Bearer error="insufficient_scope")
  requirement_not_met: {
    status: 403,
    family: 'forbidden',
    message: 'The token is valid but does not meet a requirement of this route (group, role, audience or issuer).',
    hint: 'The "claim" field names the kind of requirement (groups, roles, aud, iss; azp: the token was issued to another of your clients than the audience required). See the forward-auth URL\'s query parameters and forwardAuth.require / forwardAuth.rules in the configuration.'
  },
  requirement_invalid: {
    status: 403,
    family: 'forbidden',
    message: 'The forward-auth request names an unknown or invalid requirement, so no request can be allowed.',
    hint: 'Fix the auth URL in the proxy configuration: its only query parameters are group, role, audience (a configured audience) and issuer (a configured issuer id), each non-empty; the log names the parameter.'
  },
  // request family
  request_invalid: {
    status: 400,
    family: 'request',
    message: 'The request is not valid.',
    hint: 'The "parameter" field, when present, names the part of the request at fault: body, query, header or path, then the field, as the route names it (a nonce that is no string: the body\'s nonce; an audience in the query string; another scheme than Bearer in the authorization header). The part alone is a body that cannot be read, or a field the route does not know. Checks such as audience, nonce and maxAge go in the request body, never in the query string; an audience must be one an issuer is configured for. See openapi.yaml for the request schema; fields are not coerced (a token must be a string) and unknown fields are rejected.'
  },
  token_missing: {
    status: 400,
    family: 'request',
    message: 'The request carries no token.',
    hint: 'Send the ID token as {"token": "..."} in a JSON body or in an "Authorization: Bearer" header; to /introspect as the form field token; to /forward-auth in the Authorization header, or the cookie or header named by forwardAuth.tokenCookie or forwardAuth.tokenHeader.'
  },
  token_ambiguous: {
    status: 400,
    family: 'request',
    message: 'The request carries more than one token: in the body and in the Authorization header, or in several Authorization (or forward-auth token header or cookie) lines.',
    hint: 'Send one token, in exactly one place: a proxy that adds its own Authorization line must replace the client\'s, not add to it.'
  },
  token_in_query: {
    status: 400,
    family: 'request',
    message: 'Tokens are never accepted in the query string.',
    hint: 'URLs are logged by proxies and servers; send the token in the body or an Authorization header, and treat the exposed token as leaked.'
  },
  request_too_large: {
    status: 413,
    family: 'request',
    message: 'The request body is larger than the configured limit.',
    hint: 'Send one token per request (to /verify/batch, fewer tokens); the limits are server.bodyLimit and, for /verify/batch, batch.maxBodyBytes. The ops port\'s routes take no body (its limit is a fixed 1 KiB).'
  },
  request_timeout: {
    status: 408,
    family: 'request',
    message: 'The request was not received in time.',
    hint: 'A request must arrive whole within server.requestTimeoutMs, its headers within server.headersTimeoutMs, and a body that stops arriving is cut off after server.connectionTimeoutMs: a client or proxy that stalls in the middle of a request is refused. Raise them only for clients on very slow links.'
  },
  request_headers_too_large: {
    status: 431,
    family: 'request',
    message: 'The request headers are larger than the configured limit.',
    hint: 'The headers of a request may total server.maxTokenBytes plus 16 KiB: send fewer or smaller headers (cookies), or the token in the body of POST /verify.'
  },
  unsupported_media_type: {
    status: 415,
    family: 'request',
    message: 'The request body has a media type this route does not accept.',
    hint: 'Send Content-Type: application/json to /verify, /verify/batch and /revocations (or no body and an Authorization header to /verify), and application/x-www-form-urlencoded to /introspect and /backchannel-logout; in UTF-8 (a charset parameter, if any, utf-8 or us-ascii; forms also iso-8859-1).'
  },
  batch_too_large: {
    status: 400,
    family: 'request',
    message: 'The batch has more tokens than the configured maximum.',
    hint: 'Split the batch; see batch.maxTokens in the configuration.'
  },
  logout_token_invalid: {
    status: 400,
    family: 'request',
    message: 'The logout token is not a valid back-channel logout token of a configured issuer.',
    hint: 'Providers: send a logout token (OpenID Connect Back-Channel Logout 1.0) signed by the issuer, for a configured audience, with iat, jti, the back-channel logout event, sid or sub, and no nonce. Operators: the warn log line "logout token refused" names the check that failed.'
  },
  revocation_invalid: {
    status: 400,
    family: 'request',
    message: 'The revocation request is not valid.',
    hint: 'Send {"issuer": <configured issuer id>} with exactly one of "sid", "sub", "jti" or "all": true; "before" (seconds since the epoch, for sub and all) may be at most a minute (or the issuer\'s clockToleranceSeconds) ahead.'
  },
  not_found: {
    status: 404,
    family: 'request',
    message: 'There is no such route.',
    hint: 'See openapi.yaml for the routes this service serves.'
  },
  method_not_allowed: {
    status: 405,
    family: 'request',
    message: 'The route exists, but does not take this method.',
    hint: 'Use a method the Allow header lists; see openapi.yaml.'
  },
  rate_limited: {
    status: 429,
    family: 'request',
    message: 'Too many requests from this caller, or too many failed caller-key checks from its address.',
    hint: 'Wait for the time given in Retry-After; raise rateLimit.max (or the caller\'s callers.keys[].rateLimit.max) if this caller legitimately needs more. Failed X-Api-Key checks are bounded by callers.maxFailuresPerMinute per address: fix the key the caller sends. POST /backchannel-logout has its own limit, revocation.logoutRateLimit.'
  },
  // unavailable family
  keys_unavailable: {
    status: 503,
    family: 'unavailable',
    message: 'The issuer\'s signing keys cannot be obtained right now, so the token can be neither accepted nor rejected.',
    hint: 'Retry later: after Retry-After (in a /verify/batch item, its retryAfterSeconds). Operators: check that the provider\'s discovery and JWKS URLs are reachable from this service (see /readyz).'
  },
  key_refresh_deferred: {
    status: 503,
    family: 'unavailable',
    message: 'The logout token names a signing key that is not among the issuer\'s keys as last fetched, and they may not be fetched again yet: whether it is a key just rotated in cannot be told right now.',
    hint: 'Providers: send the logout token again after Retry-After. Operators: only on POST /backchannel-logout; a token naming an unknown kid fetches the issuer\'s JWKS again at most once per jwks.unknownKidCooldownSeconds and jwks.unknownKidRefreshesPerMinute times a minute (logout tokens have a budget of their own), and the refresh was not allowed yet. A provider that does not retry loses the logout: the error log line "revocation not recorded" names the issuer; revoke the session with POST /revocations, or lower jwks.unknownKidCooldownSeconds.'
  },
  overloaded: {
    status: 503,
    family: 'unavailable',
    message: 'The service is overloaded and sheds load; the token was neither accepted nor rejected.',
    hint: 'Retry later: after Retry-After (in a /verify/batch item, its retryAfterSeconds). Operators: add replicas or CPU; see loadShedding in the configuration and the oidc_verifier_shed_requests_total metric.'
  },
  revocations_unavailable: {
    status: 503,
    family: 'unavailable',
    message: 'Whether the token has been revoked cannot be decided right now, so it is neither accepted nor rejected.',
    hint: 'Retry later: after Retry-After (in a /verify/batch item, its retryAfterSeconds). Operators: the revocation store (revocation.redis.url) is unreachable or has not been read since start, or it is full (revocation.maxEntries); see /readyz and the oidc_verifier_revocation_store_current metric.'
  },
  // internal
  internal_error: {
    status: 500,
    family: 'internal',
    message: 'An internal error occurred.',
    hint: 'This is a bug in oidc-verifier; the logs have the details under the request id.'
  }
} as const satisfies Record<string, ErrorDefinition>

export type ErrorCode = keyof typeof ERROR_CODES

export const ALL_ERROR_CODES = Object.keys(ERROR_CODES) as ErrorCode[]

export interface ErrorDetails {
  /** The claim a claim error is about (a claim name, never a claim value). */
  claim?: string
  /** Configured issuer id, when the token was matched to one. */
  issuer?: string
  /** Seconds to wait before retrying, for the unavailable family. */
  retryAfterSeconds?: number
  /** The token's signing algorithm, for algorithm_not_allowed: only a registered JWS name, never other input. */
  algorithm?: string
  /**
   * For a time error, in whole seconds, how far the token is past its limit before the clock tolerance is
   * applied: a few seconds point at the clocks, hours at a stale session or a token kept too long.
   */
  offBySeconds?: number
  /**
   * For issuer_unknown, the configured issuer whose URL the token's iss nearly matches (its id, never the iss)
   * and how the two differ.
   */
  nearIssuer?: string
  issuerDifference?: IssuerDifference
  /**
   * For request_invalid, the part of the request at fault: `body`, `query`, `header` or `path`, followed by a
   * field name the route itself defines (`body.nonce`, `query.audience`, `header.authorization`), never a name
   * the request chose.
   */
  parameter?: string
  /**
   * For not_found, the route the request's path nearly names (a registered path, never the request's): the same
   * path but for trailing slashes or letter case, as a provider configured with `/backchannel-logout/` sends it.
   */
  nearRoute?: string
  /** With nearRoute: the methods that route takes (GET /Verify nearly names /verify, which takes POST). */
  nearRouteMethods?: string[]
}

/**
 * The typed error of the verification core. Its message is the table's safe message and never contains
 * input; `cause` may carry the underlying library error for logs (never for responses).
 */
export class VerificationError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly family: ErrorFamily
  readonly hint: string
  readonly details: ErrorDetails

  constructor (code: ErrorCode, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    const def: ErrorDefinition = ERROR_CODES[code]
    super(def.message, options)
    this.name = 'VerificationError'
    this.code = code
    this.status = def.status
    this.family = def.family
    this.hint = def.hint
    this.details = details
  }
}

export function isVerificationError (err: unknown): err is VerificationError {
  return err instanceof VerificationError
}
