/**
 * Test certificates made with the openssl binary (installed by .ci/run): a CA, a server certificate for
 * 127.0.0.1 signed by it, a client certificate signed by it, and a client certificate of another CA; on
 * demand, more server certificates of the CA (renewServer), for certificate rotation, and an intermediate CA
 * with a client certificate of its own (intermediate), expired certificates (expired), and server certificates
 * valid between dates of the caller's (dated).
 * EC P-256 keys, valid for a day, in a temporary folder removed by the caller.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface TestPki {
  dir: string
  /** Paths. */
  caCert: string
  serverCert: string
  serverKey: string
  otherCaCert: string
  /** PEM contents, for clients. */
  pem: {
    ca: Buffer
    clientCert: Buffer
    clientKey: Buffer
    strangerCert: Buffer
    strangerKey: Buffer
    serverCert: Buffer
  }
  /** Another server certificate for 127.0.0.1 signed by the CA, as a renewal brings: paths of a new pair. */
  renewServer: (name: string) => { cert: string, key: string }
  /** A server or client certificate of the CA that expired yesterday (-days -1): paths of the pair. */
  expired: (name: string, role: 'server' | 'client') => { cert: string, key: string }
  /** A server certificate of the CA valid from `notBefore` to `notAfter` (to the second; in the future, or long ago): paths of the pair. */
  dated: (name: string, notBefore: Date, notAfter: Date) => { cert: string, key: string }
  /** An intermediate CA signed by the CA, and a client certificate it signed: paths, and PEM contents for clients. */
  intermediate: (name: string) => { caCert: string, clientCert: Buffer, clientKey: Buffer, clientChain: Buffer }
  remove: () => void
}

function openssl (dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
}

function newCa (dir: string, name: string): void {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.crt`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
}

const CA_EXTENSIONS = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n'
const CLIENT_EXTENSIONS = 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n'

function newLeaf (dir: string, name: string, ca: string, extensions: string, days = '1'): void {
  writeFileSync(join(dir, `${name}.ext`), extensions)
  openssl(dir, ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`])
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial',
    '-days', days, '-out', `${name}.crt`, '-extfile', `${name}.ext`])
}

/** openssl ca, the one command of openssl 3.0 that sets both dates: its database, kept in the folder of the pki. */
const CA_CONFIG = '[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\nnew_certs_dir = issued\nserial = serial\n' +
  'default_md = sha256\npolicy = any\nunique_subject = no\n[any]\ncommonName = supplied\n'

/** As openssl ca reads a date: 20261127184500Z. */
const asn1Time = (date: Date): string => date.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z')

function newDatedLeaf (dir: string, name: string, ca: string, extensions: string, notBefore: Date, notAfter: Date): void {
  if (!existsSync(join(dir, 'ca.cnf'))) {
    writeFileSync(join(dir, 'ca.cnf'), CA_CONFIG)
    writeFileSync(join(dir, 'index.txt'), '')
    mkdirSync(join(dir, 'issued'))
  }
  writeFileSync(join(dir, `${name}.ext`), extensions)
  openssl(dir, ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`])
  openssl(dir, ['ca', '-batch', '-config', 'ca.cnf', '-cert', `${ca}.crt`, '-keyfile', `${ca}.key`, '-in', `${name}.csr`, '-out', `${name}.crt`,
    '-startdate', asn1Time(notBefore), '-enddate', asn1Time(notAfter), '-extfile', `${name}.ext`, '-notext', '-rand_serial'])
}

const SERVER_EXTENSIONS = 'basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'

export function makeTestPki (): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'oidc-verifier-pki-'))
  newCa(dir, 'ca')
  newCa(dir, 'other-ca')
  newLeaf(dir, 'server', 'ca', SERVER_EXTENSIONS)
  newLeaf(dir, 'client', 'ca', CLIENT_EXTENSIONS)
  newLeaf(dir, 'stranger', 'other-ca', CLIENT_EXTENSIONS)
  const read = (name: string): Buffer => readFileSync(join(dir, name))
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    otherCaCert: join(dir, 'other-ca.crt'),
    pem: {
      ca: read('ca.crt'),
      clientCert: read('client.crt'),
      clientKey: read('client.key'),
      strangerCert: read('stranger.crt'),
      strangerKey: read('stranger.key'),
      serverCert: read('server.crt')
    },
    renewServer: (name) => {
      newLeaf(dir, name, 'ca', SERVER_EXTENSIONS)
      return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) }
    },
    expired: (name, role) => {
      newLeaf(dir, name, 'ca', role === 'server' ? SERVER_EXTENSIONS : CLIENT_EXTENSIONS, '-1')
      return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) }
    },
    dated: (name, notBefore, notAfter) => {
      newDatedLeaf(dir, name, 'ca', SERVER_EXTENSIONS, notBefore, notAfter)
      return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) }
    },
    intermediate: (name) => {
      newLeaf(dir, name, 'ca', CA_EXTENSIONS)
      newLeaf(dir, `${name}-client`, name, CLIENT_EXTENSIONS)
      const clientCert = read(`${name}-client.crt`)
      return { caCert: join(dir, `${name}.crt`), clientCert, clientKey: read(`${name}-client.key`), clientChain: Buffer.concat([clientCert, read(`${name}.crt`)]) }
    },
    remove: () => { rmSync(dir, { recursive: true, force: true }) }
  }
}
