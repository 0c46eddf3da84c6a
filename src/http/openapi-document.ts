/**
 * openapi.yaml, the service's contract, read and parsed once per process. It lives at the package root,
 * one level above both src/ and dist/, so the same relative path works for the sources, the build and the
 * container image (which copies it next to dist/).
 *
 * `npm run build` also writes the document as JSON to dist/openapi.json (src/write-contract-json.ts), and a
 * process reads that copy instead while it is at least as new as openapi.yaml: parsing the 64 KB of YAML took
 * 0.1–0.3 s of CPU at every start, in each worker too, where JSON.parse takes about a millisecond. Without
 * the copy, with one older than the YAML (edited since the last build) or one that is not JSON, the YAML is
 * parsed as before; the YAML must ship either way.
 */
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'

export const OPENAPI_PATH = fileURLToPath(new URL('../../openapi.yaml', import.meta.url))
/** The build's JSON copy, also found from src/ and dist/ alike (one level above both, then into dist/). */
export const OPENAPI_JSON_PATH = fileURLToPath(new URL('../../dist/openapi.json', import.meta.url))

/** The parts of an OpenAPI 3.1 document the service reads; everything else is served as it is. */
export interface OpenApiDocument {
  openapi: string
  info: { title: string, version: string, summary?: string, description?: string }
  paths: Record<string, Record<string, OpenApiOperation>>
  components?: {
    schemas?: Record<string, JsonSchema>
    responses?: Record<string, OpenApiResponse>
    headers?: Record<string, { description?: string, schema?: JsonSchema }>
  }
  [member: string]: unknown
}

export interface OpenApiOperation {
  operationId?: string
  summary?: string
  description?: string
  tags?: string[]
  parameters?: Array<{ name: string, in: string, required?: boolean, description?: string, schema?: JsonSchema }>
  requestBody?: { required?: boolean, content?: Record<string, { schema?: JsonSchema }> }
  responses: Record<string, OpenApiResponse | { $ref: string }>
}

export interface OpenApiResponse {
  description?: string
  headers?: Record<string, unknown>
  content?: Record<string, { schema?: JsonSchema }>
}

export type JsonSchema = Record<string, unknown>

export interface LoadedContract {
  document: OpenApiDocument
  /** The document serialized once, served as it is. */
  json: string
}

let loaded: LoadedContract | undefined

/**
 * The contract at `path` (by default openapi.yaml, through its build copy `jsonCopy` when that is fresh; null:
 * the YAML only). Throws with the path when the file is missing or not an OpenAPI document: a packaging mistake.
 */
export function loadContract (path: string = OPENAPI_PATH, jsonCopy: string | null = path === OPENAPI_PATH ? OPENAPI_JSON_PATH : null): LoadedContract {
  const usual = path === OPENAPI_PATH && jsonCopy === OPENAPI_JSON_PATH
  if (usual && loaded !== undefined) return loaded
  const copy = jsonCopy === null ? undefined : freshCopy(jsonCopy, path)
  const contract = copy === undefined ? checked(path, parsedYaml(path)) : checked(jsonCopy as string, copy.document, copy.json)
  if (usual) loaded = contract
  return contract
}

/** npm run build's last step: the YAML at `path`, checked, written as JSON to `jsonCopy` (whole, then renamed). */
export function writeContractJson (path: string = OPENAPI_PATH, jsonCopy: string = OPENAPI_JSON_PATH): void {
  const { json } = checked(path, parsedYaml(path))
  const partial = `${jsonCopy}.${process.pid}.tmp`
  writeFileSync(partial, json)
  renameSync(partial, jsonCopy)
}

/**
 * The document in `copy`, with its text (served as it is: the build wrote it with JSON.stringify), if that file
 * is JSON and at least as new as the YAML at `path`; undefined otherwise.
 */
function freshCopy (copy: string, path: string): { document: unknown, json: string } | undefined {
  try {
    if (statSync(copy).mtimeMs < statSync(path).mtimeMs) return undefined
    const json = readFileSync(copy, 'utf8')
    return { document: JSON.parse(json) as unknown, json }
  } catch {
    return undefined
  }
}

function parsedYaml (path: string): unknown {
  try {
    return parse(readFileSync(path, 'utf8'))
  } catch (err) {
    throw new Error(`cannot load the OpenAPI document ${path} (it must ship next to dist/): ${(err as Error).message}`, { cause: err })
  }
}

/** `json`: the document's serialized text, when the caller has it already. */
function checked (path: string, document: unknown, json?: string): LoadedContract {
  const doc = document as Partial<OpenApiDocument> | null
  if (typeof doc?.openapi !== 'string' || typeof doc.paths !== 'object' || doc.paths === null || typeof doc.info?.title !== 'string') {
    throw new Error(`${path} is not an OpenAPI document (expected "openapi", "info" and "paths")`)
  }
  return { document: doc as OpenApiDocument, json: json ?? JSON.stringify(doc) }
}
