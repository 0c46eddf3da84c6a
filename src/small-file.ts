/**
 * Reading small files: the configuration file, and the files it names (certificates, keys, CA bundles,
 * decryption keys): without blocking on a path that is a FIFO or a device (opened with O_NONBLOCK, then anything
 * but a regular file is refused), and without reading a huge file whole. Synchronously at start and on a reload
 * (readSmallFileSync); the certificate watch reads off the event loop (src/http/tls-watch.ts) with the same
 * checks. The errors carry codes that fileErrorReason words.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync, type Stats } from 'node:fs'

/** Certificates, keys and CA bundles are kilobytes; anything larger at those paths is not one. */
export const MAX_SMALL_FILE_BYTES = 1024 * 1024

/** How a small file is opened: never waiting for a writer (a FIFO) or a device. */
export const SMALL_FILE_OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK

function fileError (path: string, code: 'ENOTREGULAR' | 'ETOOLARGE', message: string, maxBytes?: number): NodeJS.ErrnoException & { maxBytes?: number } {
  return Object.assign(new Error(`${path}: ${message}`), { code, path, maxBytes })
}

/** Throws unless the opened file is a regular file of at most `maxBytes`. */
export function checkSmallFile (path: string, stat: Pick<Stats, 'isFile' | 'size'>, maxBytes = MAX_SMALL_FILE_BYTES): void {
  if (!stat.isFile()) throw fileError(path, 'ENOTREGULAR', 'not a regular file')
  if (stat.size > maxBytes) throw fileError(path, 'ETOOLARGE', 'too large', maxBytes)
}

/** The bytes read, unless the file grew past `maxBytes` since its stat. */
export function checkSmallRead (path: string, bytes: Buffer, maxBytes = MAX_SMALL_FILE_BYTES): Buffer {
  if (bytes.length > maxBytes) throw fileError(path, 'ETOOLARGE', 'too large', maxBytes)
  return bytes
}

export function readSmallFileSync (path: string, maxBytes = MAX_SMALL_FILE_BYTES): Buffer {
  const fd = openSync(path, SMALL_FILE_OPEN_FLAGS)
  try {
    checkSmallFile(path, fstatSync(fd), maxBytes)
    return checkSmallRead(path, readFileSync(fd), maxBytes)
  } finally {
    closeSync(fd)
  }
}

const FS_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a parent of it is not a directory',
  ENOTREGULAR: 'it is not a regular file (a directory, FIFO, device or socket)'
}

/** Why a file could not be read, in words (the configuration's files, at start and on a reload). */
export function fileErrorReason (err: unknown): string {
  const { code = '', maxBytes = MAX_SMALL_FILE_BYTES } = err as NodeJS.ErrnoException & { maxBytes?: number }
  if (code === 'ETOOLARGE') return `it is larger than ${maxBytes} bytes; such a file is a few kilobytes`
  return FS_ERRORS[code] ?? (code !== '' ? code : 'unreadable')
}
