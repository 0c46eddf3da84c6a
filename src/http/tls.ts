/**
 * HTTPS options of a listener from server.tls (or server.opsTls, which has no clientCaFile). With
 * clientCaFile, mutual TLS: the handshake fails for a client without a certificate that chains to that CA,
 * before any HTTP is read.
 */
import { readSmallFileSync } from '../small-file.js'
import type { ServerOptions } from 'node:https'
import type { TlsConfig } from '../config/types.js'

/** The contents of a listener's files: certFile, keyFile and (when set) clientCaFile. */
export type TlsFileContents = Record<keyof TlsConfig, Buffer | undefined> & { certFile: Buffer, keyFile: Buffer }

/** HTTPS options from the contents of a listener's files, however they were read. */
export function httpsOptionsOf (files: TlsFileContents): ServerOptions {
  const options: ServerOptions = { cert: files.certFile, key: files.keyFile, minVersion: 'TLSv1.2' }
  if (files.clientCaFile !== undefined) {
    options.ca = files.clientCaFile
    options.requestCert = true
    options.rejectUnauthorized = true
  }
  return options
}

/**
 * The HTTPS options a listener starts with: its files, and a TLS handshake bounded like an idle socket (Node's own
 * bound is 120 s, and server.connectionTimeoutMs applies only once the handshake is done), so that a connection that
 * never completes one holds no slot for longer.
 */
export function listenerHttpsOptions (tls: TlsConfig, connectionTimeoutMs: number): ServerOptions {
  return { ...httpsOptions(tls), handshakeTimeout: connectionTimeoutMs }
}

/** HTTPS options of a listener, its files read now (regular files of at most MAX_SMALL_FILE_BYTES). */
export function httpsOptions (tls: TlsConfig): ServerOptions {
  return httpsOptionsOf({
    certFile: readSmallFileSync(tls.certFile),
    keyFile: readSmallFileSync(tls.keyFile),
    clientCaFile: tls.clientCaFile === undefined ? undefined : readSmallFileSync(tls.clientCaFile)
  })
}
