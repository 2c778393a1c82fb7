import * as t from 'typanion'
import type { CollectionDeclaration } from '../../../core/plugin.js'
import { isTime } from '../../state/index.js'

/** The collections the net plugin owns: formnet subnets and peers, and names. */
export const netCollections: CollectionDeclaration[] = [
  {
    name: 'cidrs',
    description: 'formnet subnet claims; the claimant admitted first holds a contested subnet',
    rules: [{ pattern: '*/{owner}', writer: 'member', description: 'a node claims a formnet subnet: cidrs/<subnet>/<node>', schema: t.isPartial({ node: t.isString(), subnet: t.isString() }) }],
  },
  {
    name: 'peers',
    description: 'developers admitted to formnet by a node',
    rules: [
      {
        pattern: '{owner}/*',
        writer: 'member',
        description: 'a node writes the formnet peers it admitted: peers/<node>/<peer>',
        schema: t.isPartial({ publicKey: t.isString(), address: t.isString(), owner: t.isString(), admittedAt: isTime }),
      },
    ],
  },
  {
    name: 'dns',
    description: 'names an account publishes',
    rules: [{ pattern: '{owner}/*', writer: 'owner', description: 'an account writes its names: dns/<owner>/<name>', schema: t.isRecord(t.isUnknown()) }],
  },
]
