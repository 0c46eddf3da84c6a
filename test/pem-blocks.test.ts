/**
 * The PEM blocks of a certificate or client CA file, paired as OpenSSL pairs them, found in time linear in the
 * file: a file of BEGIN lines without an END (1 MiB is allowed) once took a regular expression some 20 s per
 * check, at a reload or a look at the files, in the process that serves (certificateOrderProblem, clientCaProblem).
 */
import t from 'tap'
import { createPrivateKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { certificateOrderProblem, clientCaProblem } from '../src/config/operations.js'
import { pemBlocks } from '../src/config/pem-blocks.js'
import { MAX_SMALL_FILE_BYTES } from '../src/small-file.js'
import { makeTestPki } from './helpers/certs.js'

const pki = makeTestPki()
t.teardown(() => { pki.remove() })
const ca = pki.pem.ca.toString()
const server = pki.pem.serverCert.toString()

t.test('blocks in file order, each BEGIN with the next END of its label', async (t) => {
  const key = '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'
  const text = `junk\n${server}${key}${ca}`
  t.same(pemBlocks(text).map((b) => b.label), ['CERTIFICATE', 'PRIVATE KEY', 'CERTIFICATE'])
  t.same(pemBlocks(text, (label) => label === 'CERTIFICATE').map((b) => b.text), [server.trim(), ca.trim()])
  // A BEGIN without its END is skipped; a BEGIN inside a block is part of it (as OpenSSL reads them).
  const unended = `-----BEGIN CERTIFICATE-----\n-----BEGIN X509 CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n${ca}`
  t.same(pemBlocks(unended).map((b) => b.label), ['CERTIFICATE', 'CERTIFICATE'])
  t.same(pemBlocks('-----BEGIN CERTIFICATE-----\nno end'), [])
  t.same(pemBlocks(`-----BEGIN TRUSTED CERTIFICATE-----\n${ca}`).map((b) => b.label), ['CERTIFICATE'], 'an unended label does not hide another')
})

t.test('a file of a mebibyte of BEGIN lines without an END is read in linear time', async (t) => {
  const begins = (label: string): string => `-----BEGIN ${label}-----\n`.repeat(Math.floor((MAX_SMALL_FILE_BYTES - ca.length) / (label.length + 17)))
  const caFile = ca + begins('CERTIFICATE')
  t.ok(caFile.length <= MAX_SMALL_FILE_BYTES)
  t.equal(clientCaProblem('ca.pem', caFile), undefined, 'the one CA of the file; the BEGIN lines are no blocks')
  t.equal(clientCaProblem('ca.pem', ca + begins('X509 CERTIFICATE')), undefined)
  t.equal(clientCaProblem('ca.pem', ca + begins('TRUSTED CERTIFICATE')), undefined)
  // The server's key, beside a file whose first certificate is the CA's: not a file in reverse order.
  const certFile = ca + begins('CERTIFICATE') + begins('TRUSTED CERTIFICATE')
  t.equal(certificateOrderProblem('server.crt', 'server.tls.keyFile', certFile.slice(0, MAX_SMALL_FILE_BYTES), createPrivateKey(readFileSync(pki.serverKey))), undefined)
})
