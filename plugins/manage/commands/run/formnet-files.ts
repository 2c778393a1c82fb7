import { dirname, join } from 'node:path'
import type { UserConfig } from '../../../kit/index.js'
import type { DeveloperCommand } from '../shared.js'

/** Where this developer's formnet files live: the key beside the keystore, process files in the runtime dir. */
export function formnetFiles(cmd: DeveloperCommand, config: UserConfig) {
  return {
    keyFile: join(dirname(config.keystore), 'formnet-wireguard.json'),
    pidFile: join(cmd.dirs.runtimeDir, 'formnet-up.pid'),
    wireguardPidFile: join(cmd.dirs.runtimeDir, 'formnet-up-wireguard.pid'),
    statusFile: join(cmd.dirs.runtimeDir, 'formnet-up.json'),
    logFile: join(cmd.dirs.dataDir, 'logs', 'formnet-up.log'),
  }
}
