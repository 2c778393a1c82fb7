import type { FormPlugin } from '../core/plugin.js'
import corePlugin from '../core/commands/index.js'
import kit from '../plugins/kit/index.js'
import instances from '../plugins/instances/index.js'
import pack from '../plugins/pack/index.js'
import manage from '../plugins/manage/index.js'
import node from '../plugins/node/index.js'
import net from '../plugins/net/index.js'
import state from '../plugins/state/index.js'

/** The plugins that ship with form, in the order their services and commands are registered. */
export const builtinPlugins: FormPlugin[] = [corePlugin, kit, state, net, instances, pack, node, manage]
