import * as t from 'typanion'
import type { CollectionDeclaration } from '../../../core/plugin.js'
import { isTime } from '../../state/index.js'

/** The collection the instances plugin owns: instances, desired by their owner and observed by their host. */
export const instanceCollections: CollectionDeclaration[] = [
  {
    name: 'instances',
    description: 'virtual machines: what the owner wants and what the hosting node observes',
    rules: [
      {
        pattern: '{owner}/*/desired',
        writer: 'owner',
        description: 'the owner writes desired state: instances/<owner>/<id>/desired',
        schema: t.isPartial({ state: t.isEnum(['running', 'stopped', 'deleted'] as const), node: t.isString() }),
      },
      {
        pattern: '*/*/observed/{owner}',
        writer: 'member',
        description: 'a hosting node writes what it observes: instances/<owner>/<id>/observed/<node>',
        schema: t.isPartial({ state: t.isString(), updatedAt: isTime }),
      },
    ],
  },
]
