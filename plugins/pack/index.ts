import { API_VERSION, definePlugin } from '../../core/plugin.js'
import { PackDryRunCommand } from './commands/dry-run.js'
import { PackInitCommand } from './commands/init.js'
import { PackValidateCommand } from './commands/validate.js'

export default definePlugin({
  name: 'pack',
  version: '0.1.0',
  apiVersion: API_VERSION,
  description: 'Formfiles and VM images',
  commands: [PackValidateCommand, PackDryRunCommand, PackInitCommand],
})

export { place, type NodeCandidate, type PlacementRequest, type PlacementResult } from './lib/scheduler.js'
export type { Formfile, Step } from './lib/formfile/index.js'
