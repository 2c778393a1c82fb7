import { netCollections } from '../../plugins/net/lib/collections.js'
import { instanceCollections } from '../../plugins/instances/lib/collections.js'
import { packCollections } from '../../plugins/pack/lib/collections.js'
import { stateCollections } from '../../plugins/state/lib/collections.js'

/** Every built-in plugin's collections, as a node running them all enforces them. */
export const allCollections = [...stateCollections, ...netCollections, ...packCollections, ...instanceCollections]
export const collectionNames = allCollections.map((c) => c.name)
