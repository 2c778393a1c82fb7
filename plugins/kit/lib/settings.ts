import { s } from '../../../core/settings.js'

// Apart from index.ts, which registers the commands: `kit operator` reads these too.
export const kitSettings = {
  operator_keystore: s.string('', "the operator's v3 keystore; empty: the node's own generated key"),
}
