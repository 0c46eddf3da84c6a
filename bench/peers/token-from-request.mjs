// Where the peers look for the token: `Authorization: Bearer ...`, else the JSON body's "token".
const BEARER = /^Bearer +(\S+)\s*$/i

export function tokenFromRequest (headers, body) {
  const m = typeof headers.authorization === 'string' ? BEARER.exec(headers.authorization) : null
  if (m) return m[1]
  return typeof body?.token === 'string' && body.token !== '' ? body.token : undefined
}
