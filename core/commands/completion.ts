import { Command, Option } from 'clipanion'
import { FormCommand } from '../command.js'

export class CompletionCommand extends FormCommand {
  static override paths = [['completion']]
  static override usage = Command.Usage({
    description: 'Print a shell completion script (bash, zsh or fish)',
    details: 'Completes command names and options from the commands of the installed plugins; run it again after `form plugin add`.',
    examples: [
      ['Use it in this bash session', 'source <($0 completion bash)'],
      ['Install it for bash', '$0 completion bash > ~/.local/share/bash-completion/completions/form'],
      ['zsh', '$0 completion zsh > "${fpath[1]}/_form"'],
      ['fish', '$0 completion fish > ~/.config/fish/completions/form.fish'],
    ],
  })
  shell = Option.String({ name: 'bash|zsh|fish' })

  async run() {
    return (await import('./run/completion.js')).completion(this)
  }
}
