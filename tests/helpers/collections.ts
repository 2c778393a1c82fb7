import { netCollections } from '../../plugins/net/lib/collections.js'
import { nodeCollections } from '../../plugins/node/lib/collections.js'
import { packCollections } from '../../plugins/pack/lib/collections.js'
import { stateCollections } from '../../plugins/state/lib/collections.js'

/** Every built-in plugin's collections, as a node running them all enforces them. */
export const allCollections = [...stateCollections, ...netCollections, ...packCollections, ...nodeCollections]
export const collectionNames = allCollections.map((c) => c.name)
