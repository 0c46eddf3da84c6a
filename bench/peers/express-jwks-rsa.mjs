// Peer target: the most common Node stack. jwks-rsa fetches and caches signing keys (as PEM strings);
// jsonwebtoken.verify gets them through its key callback, as in the jwks-rsa README.
import express from 'express'
import jwt from 'jsonwebtoken'
import jwksRsa from 'jwks-rsa'
import { tokenFromRequest } from './token-from-request.mjs'

const [port, issuer, jwksUri, audience, alg] = process.argv.slice(2)
const jwks = jwksRsa({ jwksUri, cache: true, rateLimit: true, jwksRequestsPerMinute: 10 })
const signingKey = (header, done) => {
  jwks.getSigningKey(header.kid, (err, key) => done(err, err ? undefined : key.getPublicKey()))
}
const expected = { issuer, audience, algorithms: [alg] }

const app = express()
app.disable('x-powered-by')
app.use(express.json())
app.post('/verify', (req, res) => {
  const token = tokenFromRequest(req.headers, req.body)
  if (token === undefined) return res.status(400).json({ error: 'token_missing' })
  jwt.verify(token, signingKey, expected, (err, claims) => {
    if (err) res.status(401).json({ error: 'invalid_token', code: err.name })
    else res.json(claims)
  })
})
app.listen(Number(port), '127.0.0.1')
// Exit rather than die on SIGTERM, so that `node --cpu-prof` (bench/profile.mjs) can write its profile.
process.once('SIGTERM', () => process.exit(0))
