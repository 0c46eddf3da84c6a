#!/usr/bin/env node
// The machine's signature-verification limit, no HTTP: node:crypto.verify on a KeyObject imported once,
// over the signing input and signature of a typical ID token (signature pre-decoded; ES256's R || S already
// rewritten to DER, as the service does, so that the key is passed bare: on Node 24 `dsaEncoding` alone costs
// ~22 µs a check), single thread. Run pinned to the target's core, it is the "one raw signature
// verification" of the goals. Needs the service built (npm run bench builds it) for the DER rewrite.
//
//   node lib/crypto-limit.mjs [--algs ES256,RS256,EdDSA] [--seconds 1.5]   → JSON on stdout
import { createPublicKey, verify } from 'node:crypto'
import { parseArgs } from 'node:util'
import { p1363ToDer } from '../../dist/core/ecdsa-der.js'
import { generateKeySet } from './keys.mjs'
import { mintToken } from './mint.mjs'

const { values: o } = parseArgs({
  options: { algs: { type: 'string', default: 'ES256,RS256,EdDSA' }, seconds: { type: 'string', default: '1.5' } }
})
const algs = o.algs.split(',').filter(Boolean)
const seconds = Number(o.seconds)
const keySet = generateKeySet(algs)
const DIGEST = { RS256: 'sha256', ES256: 'sha256', EdDSA: null }

const results = {}
for (const alg of algs) {
  const token = await mintToken(keySet, { alg, issuer: 'http://127.0.0.1:1', audience: 'bench-client' })
  const dot = token.lastIndexOf('.')
  const data = Buffer.from(token.slice(0, dot))
  const jwsSignature = Buffer.from(token.slice(dot + 1), 'base64url')
  const sig = alg === 'ES256' ? p1363ToDer(jwsSignature, 32) : jwsSignature
  const key = createPublicKey({ key: keySet[alg].publicJwk, format: 'jwk' })
  const once = () => { if (!verify(DIGEST[alg], data, key, sig)) throw new Error(`${alg}: signature did not verify`) }
  for (let i = 0; i < 500; i++) once()
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  const end = t0 + BigInt(Math.round(seconds * 1e9))
  let ops = 0
  let now = t0
  while (now < end) {
    for (let i = 0; i < 50; i++) once()
    ops += 50
    now = process.hrtime.bigint()
  }
  const wallS = Number(now - t0) / 1e9
  const c = process.cpuUsage(cpu0)
  const cpuS = (c.user + c.system) / 1e6
  results[alg] = { tokenBytes: token.length, ops, opsPerS: Math.round(ops / wallS), opsPerCpuS: Math.round(ops / cpuS), usPerVerify: (cpuS * 1e6) / ops }
}
process.stdout.write(JSON.stringify({ node: process.version, seconds, results }) + '\n')
