/**
 * Child process of test/client-ca-key-types.test.ts: checks a client CA file as a reload or the certificate
 * watch does (clientCaProblem), then decrypts with AES-GCM through WebCrypto, as jose decrypts the content of an
 * encrypted ID token. Prints the check's problem (or "no problem") and "aes-gcm ok"; Node 20 aborts the process
 * at the AES job when the check left an OpenSSL error behind.
 *
 *   node test/helpers/client-ca-check-then-aes.ts CA_FILE
 */
import { readFileSync } from 'node:fs'
import { webcrypto } from 'node:crypto'
import { clientCaProblem } from '../../src/config/operations.js'

const path = process.argv[2] ?? ''
process.stdout.write(`${clientCaProblem(path, readFileSync(path)) ?? 'no problem'}\n`)
const key = await webcrypto.subtle.generateKey({ name: 'AES-GCM', length: 128 }, false, ['encrypt', 'decrypt'])
const iv = new Uint8Array(12)
const sealed = await webcrypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, new Uint8Array(16))
const opened = await webcrypto.subtle.decrypt({ name: 'AES-GCM', iv }, key, sealed)
process.stdout.write(`aes-gcm ${opened.byteLength === 16 ? 'ok' : 'wrong'}\n`)
