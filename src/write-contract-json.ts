/**
 * `npm run build`'s last step, after tsc: writes openapi.yaml as JSON to dist/openapi.json, the copy the
 * service reads at start instead of parsing the YAML (src/http/openapi-document.ts says why and when).
 *   node dist/write-contract-json.js
 */
import { OPENAPI_JSON_PATH, writeContractJson } from './http/openapi-document.js'

writeContractJson()
process.stdout.write(`wrote ${OPENAPI_JSON_PATH}\n`)
