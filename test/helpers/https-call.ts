/**
 * Calls to a TLS listener on 127.0.0.1, each on a connection of its own (no agent, no session reuse), so
 * that every call makes a full handshake and meets the certificate the listener serves at that moment.
 */
import { request, type RequestOptions } from 'node:https'
import { connect, type ConnectionOptions } from 'node:tls'

export interface Answer { status: number, body: string }

export function call (port: number, options: RequestOptions & { path: string, method?: string, payload?: string }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, agent: false, ...options, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    if (options.payload !== undefined) req.setHeader('content-type', 'application/json')
    req.end(options.payload)
  })
}

/** The SHA-256 fingerprint of the certificate the listener presents in a handshake (as X509Certificate.fingerprint256). */
export function servedFingerprint (port: number, options: ConnectionOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ...options }, () => {
      const { fingerprint256 } = socket.getPeerCertificate()
      socket.end()
      resolve(fingerprint256)
    })
    socket.on('error', reject)
    socket.setTimeout(5000, () => socket.destroy(new Error('timeout')))
  })
}
