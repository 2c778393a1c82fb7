import type { Cli } from 'clipanion'
import type { FormContext } from '../../command.js'
import { FormError } from '../../errors.js'
import { optionsOf, type OptionInfo } from '../help.js'
import type { CompletionCommand } from '../completion.js'

interface Tree {
  /** group path (space-separated, '' for the top) -> the words that may follow */
  groups: Map<string, Set<string>>
  /** command path -> its options */
  commands: Map<string, OptionInfo[]>
}

function tree(cli: Cli<FormContext>): Tree {
  const groups = new Map<string, Set<string>>()
  const commands = new Map<string, OptionInfo[]>()
  for (const def of cli.definitions()) {
    const path = def.path.split(' ').slice(1)
    if (path.length === 0 || path[0].startsWith('-')) continue
    commands.set(path.join(' '), optionsOf(def))
    // the values of the positional arguments that have a fixed set
    if (path.join(' ') === 'completion') groups.set('completion', new Set(Object.keys(SHELLS)))
    for (let i = 0; i < path.length; i++) {
      const key = path.slice(0, i).join(' ')
      if (!groups.has(key)) groups.set(key, new Set())
      groups.get(key)!.add(path[i])
    }
  }
  groups.set('help', new Set([...(groups.get('') ?? [])].filter((w) => w !== 'help' && w !== 'completion')))
  return { groups, commands }
}

/** Words are command names and option names: [a-z0-9-]; anything else is refused, not quoted. */
function safe(word: string): string {
  if (!/^[\w.-]+$/.test(word.replace(/^-+/, ''))) throw new FormError('COMPLETION_WORD', `cannot put "${word}" into a completion script`, { hint: 'a plugin declares a command or option with unusual characters' })
  return word
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

/**
 * The arms of a shell `case` on the command path typed so far (bash and zsh share the syntax): a command
 * (and any arguments after it) gets its subcommands and options, a group its subcommands.
 */
function caseArms({ groups, commands }: Tree, assign: (words: string) => string): string {
  const arms: string[] = []
  for (const [path, opts] of commands) {
    const words = [...(groups.get(path) ?? []), ...opts.flatMap((o) => o.names), '--help'].map(safe).join(' ')
    arms.push(`    ${quote(path)}|${quote(path + ' ')}*) ${assign(words)} ;;`)
  }
  for (const [path, next] of groups) if (!commands.has(path)) arms.push(`    ${quote(path)}) ${assign([...next].map(safe).join(' ') + ' --help')} ;;`)
  return arms.join('\n')
}

function bash(tree: Tree): string {
  return `# bash completion for form; load it with: source <(form completion bash)
# or save it: form completion bash > ~/.local/share/bash-completion/completions/form
_form_complete() {
  local cur=\${COMP_WORDS[COMP_CWORD]} cmdpath= words= i
  for ((i = 1; i < COMP_CWORD; i++)); do
    [[ \${COMP_WORDS[i]} == -* ]] && break
    cmdpath+=\${cmdpath:+ }\${COMP_WORDS[i]}
  done
  case "$cmdpath" in
${caseArms(tree, (words) => `words=${quote(words)}`)}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _form_complete form
`
}

function zsh(tree: Tree): string {
  // $words is zsh's array of the command line's words; $cands what may come next
  return `#compdef form
# zsh completion for form; load it with: source <(form completion zsh)
# or save it as _form in a directory of $fpath
_form_complete() {
  local cmdpath= i
  local -a cands
  for ((i = 2; i < CURRENT; i++)); do
    [[ \${words[i]} == -* ]] && break
    cmdpath+=\${cmdpath:+ }\${words[i]}
  done
  case "$cmdpath" in
${caseArms(tree, (words) => `cands=(${words})`)}
  esac
  if (( \${#cands} )); then compadd -- $cands; else _files; fi
}
(( $+functions[compdef] )) || { autoload -Uz compinit && compinit }
compdef _form_complete form
`
}

function fish({ groups, commands }: Tree): string {
  const lines = ['# fish completion for form; load it with: form completion fish | source', '# or save it: form completion fish > ~/.config/fish/completions/form.fish', 'complete -c form -f']
  // the path typed so far, as fish sees it: every word of it seen, and (for a group) none of its children yet
  const seen = (path: string) => (path ? path.split(' ').map((w) => `__fish_seen_subcommand_from ${safe(w)}`).join('; and ') : '__fish_use_subcommand')
  for (const [path, next] of groups) {
    const children = [...next].map(safe).join(' ')
    const cond = path ? `${seen(path)}; and not __fish_seen_subcommand_from ${children}` : '__fish_use_subcommand'
    lines.push(`complete -c form -n ${quote(cond)} -a ${quote(children)}`)
  }
  for (const [path, opts] of commands) {
    for (const o of opts) {
      const flags = o.names.map((n) => (n.startsWith('--') ? `-l ${safe(n.slice(2))}` : n.length === 2 ? `-s ${safe(n.slice(1))}` : `-o ${safe(n.slice(1))}`)).join(' ')
      lines.push(`complete -c form -n ${quote(seen(path))} ${flags}${o.value ? ' -r -F' : ''} -d ${quote(o.description.split('\n')[0].slice(0, 80))}`)
    }
  }
  return lines.join('\n') + '\n'
}

const SHELLS = { bash, zsh, fish }

export async function completion(cmd: CompletionCommand) {
  const make = SHELLS[cmd.shell as keyof typeof SHELLS]
  if (!make) throw new FormError('USAGE', `no completion for the shell "${cmd.shell}"`, { hint: 'use bash, zsh or fish' })
  const cli = cmd.context.formCli
  if (!cli) throw new FormError('INTERNAL', 'completion needs the command line it belongs to')
  cmd.context.stdout.write(make(tree(cli)))
}
