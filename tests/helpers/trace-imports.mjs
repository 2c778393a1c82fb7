// Loaded with --import: records every module URL the process resolves into FORM_TRACE_IMPORTS,
// so a test can check which dependencies a command really loads.
import { registerHooks } from 'node:module'
import { appendFileSync } from 'node:fs'

const out = process.env.FORM_TRACE_IMPORTS
registerHooks({
  resolve(specifier, context, next) {
    const result = next(specifier, context)
    if (out) appendFileSync(out, result.url + '\n')
    return result
  },
})
