/**
 * The contract, served: GET /openapi.json (openapi.yaml, read once at start: src/http/openapi-document.ts)
 * and GET /docs (an HTML rendering of it with no script and no external resource). Both are computed once; a
 * request costs a send.
 */
import type { FastifyPluginAsync } from 'fastify'
import { DOCS_CSP, renderDocsPage } from '../docs-page.js'
import { loadContract } from '../openapi-document.js'
import { DocsPageSchema, OpenApiJsonSchema } from '../schemas.js'

export const contractRoutes: FastifyPluginAsync = async (fastify) => {
  const { document, json } = loadContract()
  const page = renderDocsPage(document)

  // The payloads are strings with a content type set, so Fastify sends them as they are; the response
  // schemas document the routes (and test/contract-routes.test.ts checks the body against them).
  fastify.get('/openapi.json', { schema: { response: { 200: OpenApiJsonSchema } } }, async (_request, reply) => {
    return reply.type('application/json; charset=utf-8').header('x-content-type-options', 'nosniff').send(json)
  })

  fastify.get('/docs', { schema: { response: { 200: DocsPageSchema } } }, async (_request, reply) => {
    return reply
      .type('text/html; charset=utf-8')
      .header('content-security-policy', DOCS_CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .send(page)
  })
}
