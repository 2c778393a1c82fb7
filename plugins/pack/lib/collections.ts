import * as t from 'typanion'
import type { CollectionDeclaration } from '../../../core/plugin.js'
import { isTime } from '../../state/index.js'

/** The collection the pack plugin owns: build requests and what builder nodes report. */
export const packCollections: CollectionDeclaration[] = [
  {
    name: 'builds',
    description: 'build requests (the owner) and their progress (the builder node)',
    rules: [
      { pattern: '{owner}/*', writer: 'owner', description: 'the owner writes a build request: builds/<owner>/<build>', schema: t.isPartial({ name: t.isString(), node: t.isString() }) },
      {
        pattern: '*/*/status/{owner}',
        writer: 'member',
        description: 'a builder node writes progress and result: builds/<owner>/<build>/status/<node>',
        schema: t.isPartial({ state: t.isString(), updatedAt: isTime }),
      },
    ],
  },
]
