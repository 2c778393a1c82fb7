import { API_VERSION, definePlugin } from '../../core/plugin.js'
import { ManageFormnetDownCommand } from './commands/formnet-down.js'
import { ManageFormnetUpCommand } from './commands/formnet-up.js'
import { ManageJoinCommand } from './commands/join.js'
import { ManageLeaveCommand } from './commands/leave.js'

export default definePlugin({
  name: 'manage',
  version: '0.1.0',
  apiVersion: API_VERSION,
  description: 'developer commands: formnet membership and instances',
  commands: [ManageJoinCommand, ManageFormnetUpCommand, ManageFormnetDownCommand, ManageLeaveCommand],
})
