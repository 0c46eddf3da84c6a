/**
 * No hostile input leaves an error on OpenSSL's queue. On Node 20 a node:crypto call that fails or compares keys
 * of different types without clearing it (KeyObject.equals across key types, src/config/operations.ts) makes the
 * next WebCrypto AES job abort the whole process (`errors->Empty()` in CipherJob::ToResult); the content of an
 * encrypted ID token is such a job (jose). So a forged token, a hostile JWKS or JWE header, or refused TLS files
 * must leave nothing behind: the child process (test/helpers/hostile-then-jwe.ts) runs each such step, then a
 * WebCrypto AES-GCM job at once and valid encrypted tokens through POST /verify, in both signature check modes.
 */
import t from 'tap'
import { runNode } from './helpers/node-process.js'

for (const mode of ['event-loop', 'thread-pool']) {
  t.test(`every hostile step is followed by a working AES job and valid encrypted tokens (${mode} signature checks)`, async (t) => {
    const r = await runNode('test/helpers/hostile-then-jwe.ts', [mode])
    t.same([r.code, r.signal], [0, null], `the process ends normally (stderr: ${r.stderr.slice(0, 400)})`)
    const lines = r.stdout.trim().split('\n')
    t.equal(lines.at(-1), 'done', 'every step ran')
    const steps = lines.slice(0, -1)
    t.ok(steps.length > 80, `${steps.length} steps`)
    for (const line of steps) t.match(line, /: .* then aes-gcm ok, 200,200,200$/, line)
    // The hostile steps themselves answered as hostile input should: a 401, a refusal, never a 500.
    t.notOk(steps.some((l) => /: (500|503)\b/.test(l)), 'no hostile token answered 5xx')
  })
}
