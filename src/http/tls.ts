/**
 * HTTPS options of a listener from server.tls (or server.opsTls, which has no clientCaFile). With
 * clientCaFile, mutual TLS: the handshake fails for a client without a certificate that chains to that CA,
 * before any HTTP is read.
 */
import { readFileSync } from 'node:fs'
import type { ServerOptions } from 'node:https'
import type { TlsConfig } from '../config/types.js'

export function httpsOptions (tls: TlsConfig): ServerOptions {
  const options: ServerOptions = {
    cert: readFileSync(tls.certFile),
    key: readFileSync(tls.keyFile),
    minVersion: 'TLSv1.2'
  }
  if (tls.clientCaFile !== undefined) {
    options.ca = readFileSync(tls.clientCaFile)
    options.requestCert = true
    options.rejectUnauthorized = true
  }
  return options
}
