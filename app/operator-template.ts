// templates/operator.toml and form-operator(5) are rendered from the built-in plugins' declared settings
// (core/settings.ts): `npm run build` writes both, and tests/core/operator-template.test.ts fails when the
// committed template differs from the declarations.
import { renderOperatorTemplate, renderSettingsManPage } from '../core/settings.js'
import { builtinPlugins } from './builtins.js'

const INTRO = `Formation operator config (TOML). \`form node start\` reads /etc/form/operator.toml as root, else
~/.config/form/operator.toml, or the file given with --config / FORM_OPERATOR_CONFIG. Every key is
optional: without a file the node runs a one-node devnet on these defaults.
\`form kit operator\` writes this file for you.`

const HEADER = `${INTRO.split('\n').map((l) => `# ${l}`).join('\n')}
# Generated from the settings the plugins declare (npm run build); \`man 5 form-operator\` describes them too.`

export function operatorTemplate(): string {
  return renderOperatorTemplate(builtinPlugins, HEADER)
}

export function operatorManPage(version: string, date: string): { file: string; content: string } {
  return { file: 'form-operator.5', content: renderSettingsManPage(builtinPlugins, version, date, INTRO.replace(/\n/g, ' ')) }
}
