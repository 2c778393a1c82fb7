import * as t from 'typanion'
import type { CollectionDeclaration } from '../../../core/plugin.js'

/** A time in ms since epoch, as a Date can hold it. */
export const isTime = t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(0, 8.64e15))
const isCount = t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(0, 2 ** 31))

/** The collections the state plugin owns: membership, node records and accounts. */
export const stateCollections: CollectionDeclaration[] = [
  {
    name: 'members',
    description: 'who is a node of this network: admissions and revocations signed by the genesis admins',
    rules: [
      {
        pattern: '*/{owner}',
        writer: 'admin',
        description: 'an admin admits or revokes a node: members/<node>/<admin> = {status: "admitted"|"revoked"}',
        schema: t.isPartial({ status: t.isEnum(['admitted', 'revoked'] as const) }),
      },
    ],
  },
  {
    name: 'nodes',
    description: 'each node\'s own record: peer id, addresses, capacity, heartbeat',
    rules: [
      {
        pattern: '{owner}',
        writer: 'member',
        description: 'a node writes its own record (peer id, addresses, capacity, heartbeat)',
        schema: t.isPartial({
          heartbeat: isTime,
          capacity: t.isOptional(t.isPartial({ vcpus: isCount, memoryMb: isCount, diskGb: isCount })),
          peerId: t.isOptional(t.isString()),
          peerIdProof: t.isOptional(t.isString()),
          multiaddrs: t.isOptional(t.isArray(t.isString())),
        }),
      },
    ],
  },
  {
    name: 'accounts',
    description: 'an account\'s public profile',
    rules: [{ pattern: '{owner}', writer: 'owner', description: 'an account writes its own record (an object)', schema: t.isRecord(t.isUnknown()) }],
  },
]
