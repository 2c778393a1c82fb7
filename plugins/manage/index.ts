import { API_VERSION, definePlugin } from '../../core/plugin.js'
import { ManageFormnetDownCommand } from './commands/formnet-down.js'
import { ManageFormnetUpCommand } from './commands/formnet-up.js'
import { ManageJoinCommand } from './commands/join.js'
import { ManageLeaveCommand } from './commands/leave.js'
import { ManageDeleteCommand, ManageStartCommand, ManageStopCommand } from './commands/desired.js'
import { ManageDnsListCommand, ManageDnsRmCommand, ManageDnsSetCommand } from './commands/dns.js'
import { ManageGetIpCommand } from './commands/get-ip.js'
import { ManageListCommand } from './commands/list.js'
import { ManageLogsCommand } from './commands/logs.js'
import { ManageSshCommand } from './commands/ssh.js'

export default definePlugin({
  name: 'manage',
  version: '0.1.0',
  apiVersion: API_VERSION,
  description: 'developer commands: formnet membership and instances',
  commands: [
    ManageJoinCommand,
    ManageFormnetUpCommand,
    ManageFormnetDownCommand,
    ManageLeaveCommand,
    ManageListCommand,
    ManageStartCommand,
    ManageStopCommand,
    ManageDeleteCommand,
    ManageLogsCommand,
    ManageGetIpCommand,
    ManageSshCommand,
    ManageDnsSetCommand,
    ManageDnsListCommand,
    ManageDnsRmCommand,
  ],
})

/** Base of commands that act for the wallet of `form kit init` (`form pack build` and `status` too). */
export { DeveloperCommand } from './commands/shared.js'
