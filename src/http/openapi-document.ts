/**
 * openapi.yaml, the service's contract, read and parsed once per process. It lives at the package root,
 * one level above both src/ and dist/, so the same relative path works for the sources, the build and the
 * container image (which copies it next to dist/).
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'

export const OPENAPI_PATH = fileURLToPath(new URL('../../openapi.yaml', import.meta.url))

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

/** Throws with the path when the file is missing or not an OpenAPI document: a packaging mistake. */
export function loadContract (path: string = OPENAPI_PATH): LoadedContract {
  if (path === OPENAPI_PATH && loaded !== undefined) return loaded
  let document: unknown
  try {
    document = parse(readFileSync(path, 'utf8'))
  } catch (err) {
    throw new Error(`cannot load the OpenAPI document ${path} (it must ship next to dist/): ${(err as Error).message}`, { cause: err })
  }
  const doc = document as Partial<OpenApiDocument> | null
  if (typeof doc?.openapi !== 'string' || typeof doc.paths !== 'object' || doc.paths === null || typeof doc.info?.title !== 'string') {
    throw new Error(`${path} is not an OpenAPI document (expected "openapi", "info" and "paths")`)
  }
  const contract = { document: doc as OpenApiDocument, json: JSON.stringify(doc) }
  if (path === OPENAPI_PATH) loaded = contract
  return contract
}
