// Baseline target: Fastify 5, the same route and JSON body parsing as the verifiers, no verification.
import Fastify from 'fastify'

const port = Number(process.argv[2])
// About the size of a small identity answer.
const answer = { sub: 'baseline', iss: 'baseline', aud: 'baseline', email: 'baseline@example.com', name: 'Baseline' }

const app = Fastify({ logger: false })
app.post('/verify', async () => answer)
await app.listen({ host: '127.0.0.1', port })
// Exit rather than die on SIGTERM, so that `node --cpu-prof` (bench/profile.mjs) can write its profile.
process.once('SIGTERM', () => process.exit(0))
