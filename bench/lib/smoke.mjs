// Correctness before load: a target must accept a valid token (JSON body and Bearer header) and answer the
// token's subject, and reject bad ones with a 4xx JSON error. A fast answer to the wrong question is worth
// nothing, so a target failing this is not measured. The baseline (verifies nothing) only gets the 200s.
// No unknown-kid token here: it would make a verifier re-fetch the JWKS and blur the per-block JWKS count
// (the flood scenario measures that).
import { mintToken } from './mint.mjs'

async function post (url, { token, bearer = false, body }) {
  const init = { method: 'POST', headers: {} }
  // As the load sends it (lib/load.mjs), so that a target configured with caller keys passes too.
  if (process.env.BENCH_API_KEY) init.headers['x-api-key'] = process.env.BENCH_API_KEY
  if (bearer) init.headers.authorization = `Bearer ${token}`
  else {
    init.headers['content-type'] = 'application/json'
    init.body = JSON.stringify(body ?? { token })
  }
  const res = await fetch(`${url}/verify`, init)
  const text = await res.text()
  let json
  try { json = JSON.parse(text) } catch { json = undefined }
  return { status: res.status, json, text: text.slice(0, 200) }
}

// Raw claims (sub), or a normalized identity (subject, claims.sub).
const subjectOf = (json) => json?.sub ?? json?.subject ?? json?.claims?.sub

/** Returns a list of failures; empty means the target passed. */
export async function smoke ({ url, keySet, issuer, audience, alg, verifies }) {
  const failures = []
  const good = await mintToken(keySet, { alg, issuer, audience, i: 424242 })
  const sub = JSON.parse(Buffer.from(good.split('.')[1], 'base64url').toString()).sub
  for (const bearer of [false, true]) {
    const r = await post(url, { token: good, bearer })
    const how = bearer ? 'Bearer' : 'body'
    if (r.status !== 200) failures.push(`valid token (${how}): expected 200, got ${r.status} ${r.text}`)
    else if (verifies && subjectOf(r.json) !== sub) failures.push(`valid token (${how}): answered subject ${subjectOf(r.json)}, expected ${sub}`)
  }
  if (!verifies) return failures

  const otherAlg = alg === 'ES256' ? 'RS256' : 'ES256'
  const bad = [
    ['bad signature', await mintToken(keySet, { alg, issuer, audience, variant: 'bad-sig' })],
    ['expired', await mintToken(keySet, { alg, issuer, audience, variant: 'expired' })],
    ['wrong audience', await mintToken(keySet, { alg, issuer, audience, variant: 'wrong-aud' })],
    ['wrong issuer', await mintToken(keySet, { alg, issuer, audience, variant: 'wrong-iss' })],
    [`alg ${otherAlg} (not the configured one)`, await mintToken(keySet, { alg: otherAlg, issuer, audience })],
    ['garbage', 'not.a.jwt']
  ]
  for (const [name, token] of bad) {
    const r = await post(url, { token })
    if (r.status < 400 || r.status >= 500 || r.status === 404) failures.push(`${name}: expected a 4xx rejection, got ${r.status} ${r.text}`)
    else if (r.json === undefined) failures.push(`${name}: the rejection is not JSON`)
  }
  const r = await post(url, { body: {} })
  if (r.status < 400 || r.status >= 500 || r.status === 404) failures.push(`no token: expected a 4xx rejection, got ${r.status} ${r.text}`)
  return failures
}
