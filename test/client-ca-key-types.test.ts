/**
 * A client CA file with two CAs of one name but keys of different types (a root of the file, and a certificate
 * of that name with an RSA key issued by a CA outside the file, as a PKI that changed its key type may leave in a
 * bundle). The check that each CA of the file chains to a root of it compares such a pair; comparing their keys
 * with KeyObject.equals leaves an OpenSSL error behind on Node 20, and the next WebCrypto AES job (the content of
 * an encrypted ID token) aborts the process. A reload or the certificate watch runs the check in a process that
 * keeps serving, so the check must leave nothing behind, whatever it finds.
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { makeTestPki } from './helpers/certs.js'
import { runNode } from './helpers/node-process.js'

const pki = makeTestPki()
t.teardown(() => { pki.remove() })

const openssl = (args: string[]): void => { execFileSync('openssl', args, { cwd: pki.dir, stdio: ['ignore', 'ignore', 'pipe'] }) }
// "CN=ca" again, with an RSA key, issued by other-ca (EC, not in the file).
writeFileSync(join(pki.dir, 'rsa-ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n')
openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=ca', '-keyout', 'rsa-ca.key', '-out', 'rsa-ca.csr'])
openssl(['x509', '-req', '-in', 'rsa-ca.csr', '-CA', 'other-ca.crt', '-CAkey', 'other-ca.key', '-CAcreateserial', '-days', '1', '-out', 'rsa-ca.crt', '-extfile', 'rsa-ca.ext'])
const bundle = join(pki.dir, 'root-and-rsa-namesake.crt')
writeFileSync(bundle, Buffer.concat([pki.pem.ca, readFileSync(join(pki.dir, 'rsa-ca.crt'))]))

t.test('checking CAs of one name and different key types leaves no OpenSSL error for the next AES job', async (t) => {
  const r = await runNode('test/helpers/client-ca-check-then-aes.ts', [bundle])
  t.same([r.code, r.signal], [0, null], `the process ends normally (stderr: ${r.stderr.slice(0, 300)})`)
  t.match(r.stdout, /the CA "CN=ca" in ".*root-and-rsa-namesake\.crt" \(certificate 2 of 2\) is an intermediate whose issuer \("CN=other-ca"\) is not in the file/,
    'the RSA namesake is not the root\'s copy: it is reported as an intermediate outside the file')
  t.match(r.stdout, /aes-gcm ok/)
})

// A root on a curve JWK has no name for (brainpoolP256r1) and its cross-signed copy: their keys are compared by
// their SPKI bytes once the JWK export fails, which must leave nothing behind either.
openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:brainpoolP256r1', '-nodes', '-days', '1', '-subj', '/CN=bp-ca',
  '-keyout', 'bp-ca.key', '-out', 'bp-ca.crt', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
openssl(['req', '-new', '-key', 'bp-ca.key', '-subj', '/CN=bp-ca', '-out', 'bp-cross.csr'])
openssl(['x509', '-req', '-in', 'bp-cross.csr', '-CA', 'other-ca.crt', '-CAkey', 'other-ca.key', '-CAcreateserial', '-days', '1', '-out', 'bp-cross.crt', '-extfile', 'rsa-ca.ext'])
const brainpool = join(pki.dir, 'bp-root-and-cross.crt')
writeFileSync(brainpool, Buffer.concat([readFileSync(join(pki.dir, 'bp-ca.crt')), readFileSync(join(pki.dir, 'bp-cross.crt'))]))

t.test('comparing the keys of CAs on a curve JWK does not name leaves no OpenSSL error for the next AES job', async (t) => {
  const r = await runNode('test/helpers/client-ca-check-then-aes.ts', [brainpool])
  t.same([r.code, r.signal], [0, null], `the process ends normally (stderr: ${r.stderr.slice(0, 300)})`)
  t.match(r.stdout, /^no problem\n/, 'the copy is the root\'s: one name, one key')
  t.match(r.stdout, /aes-gcm ok/)
})
