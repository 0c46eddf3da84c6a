/**
 * Test certificates made with the openssl binary (installed by .ci/run): a CA, a server certificate for
 * 127.0.0.1 signed by it, a client certificate signed by it, and a client certificate of another CA; on
 * demand, more server certificates of the CA (renewServer), for certificate rotation.
 * EC P-256 keys, valid for a day, in a temporary folder removed by the caller.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
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

function newLeaf (dir: string, name: string, ca: string, extensions: string): void {
  writeFileSync(join(dir, `${name}.ext`), extensions)
  openssl(dir, ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`])
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial',
    '-days', '1', '-out', `${name}.crt`, '-extfile', `${name}.ext`])
}

const SERVER_EXTENSIONS = 'basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'

export function makeTestPki (): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'oidc-verifier-pki-'))
  newCa(dir, 'ca')
  newCa(dir, 'other-ca')
  newLeaf(dir, 'server', 'ca', SERVER_EXTENSIONS)
  newLeaf(dir, 'client', 'ca', 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n')
  newLeaf(dir, 'stranger', 'other-ca', 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n')
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
    remove: () => { rmSync(dir, { recursive: true, force: true }) }
  }
}
