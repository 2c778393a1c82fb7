import { Command, Option } from 'clipanion'
import { DeveloperCommand } from '../../manage/index.js'

/** Base of the commands about one of your builds: --build-id, else the build of ./Formfile. */
export abstract class BuildCommand extends DeveloperCommand {
  buildId = Option.String('--build-id', { description: 'The build (default: the build of the Formfile in this directory)' })
  file = Option.String('-f,--file', { description: 'The Formfile whose build is meant (default ./Formfile)' })
}

export class PackStatusCommand extends BuildCommand {
  static override paths = [['pack', 'status']]
  static override usage = Command.Usage({
    category: 'Pack',
    description: 'Show the state of a build',
    details: 'Reads the build request and the building node\'s report from state: queued, building (with the current step), built (with the image), failed (with the failing line and its code) or cancelled. The output of a failed step is not in state (it can hold secrets): when the node this command talks to built it, the command asks it for the output, signed by your wallet.',
    examples: [
      ['The build of ./Formfile', '$0 pack status'],
      ['A build by id, as JSON', '$0 pack status --build-id <id> --json'],
    ],
  })

  async run() {
    return (await import('./run/status.js')).packStatus(this)
  }
}

export class PackLogsCommand extends BuildCommand {
  static override paths = [['pack', 'logs']]
  static override usage = Command.Usage({
    category: 'Pack',
    description: "Print a build's log (what its steps printed)",
    details: 'The log stays on the node that built it and only its owner may read it (the request is signed by your wallet; another wallet is refused with BUILD_NOT_OWNER): ask that node (--node) when it is not your default one. With -f, follows until the build ends.',
    examples: [
      ['The log of the build of ./Formfile', '$0 pack logs'],
      ['Follow a build', '$0 pack logs --build-id <id> -f'],
    ],
  })
  // -f is --follow here (as in tail -f and `form node logs`); the Formfile is --file only
  override file = Option.String('--file', { description: 'The Formfile whose build is meant (default ./Formfile)' })
  followFlag = Option.Boolean('-f,--follow', false, { description: 'Keep printing until the build ends' })

  async run() {
    return (await import('./run/status.js')).packLogs(this)
  }
}

export class PackCancelCommand extends BuildCommand {
  static override paths = [['pack', 'cancel']]
  static override usage = Command.Usage({
    category: 'Pack',
    description: 'Cancel a queued or running build',
    details: 'Marks your build request cancelled in state; the building node stops it (the step running is killed, nothing is kept) and reports it cancelled.',
    examples: [['Cancel the build of ./Formfile', '$0 pack cancel']],
  })

  async run() {
    return (await import('./run/status.js')).packCancel(this)
  }
}
