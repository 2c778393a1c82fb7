/**
 * The one deterministic encoding used for hashing and signing: JSON with object keys sorted by
 * code unit, no whitespace, and only JSON values (finite numbers, strings, booleans, null, arrays,
 * plain objects). JSON.stringify already escapes strings deterministically.
 *
 * Every node encodes every operation it receives once (its hash and signed message), so this is
 * written as loops over string concatenation: the entries/filter/sort/map/join version cost 2-3x
 * as much, and was the largest single item of a receiving node's main thread.
 */
export function canonicalJson(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value)
    case 'boolean':
      return value ? 'true' : 'false'
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('numbers must be finite')
      return JSON.stringify(value)
    case 'object': {
      if (value === null) return 'null'
      if (Array.isArray(value)) {
        let out = '['
        // a hole reads as undefined and is refused, as JSON has no hole
        for (let i = 0; i < value.length; i++) out += (i ? ',' : '') + canonicalJson(value[i])
        return out + ']'
      }
      const proto = Object.getPrototypeOf(value)
      if (proto !== Object.prototype && proto !== null) throw new TypeError('only plain objects can be encoded')
      const record = value as Record<string, unknown>
      // the default sort compares UTF-16 code units, the order this encoding is defined by
      const keys = Object.keys(record).sort()
      let out = '{'
      for (const key of keys) {
        const v = record[key]
        if (v === undefined) continue
        out += (out.length > 1 ? ',' : '') + JSON.stringify(key) + ':' + canonicalJson(v)
      }
      return out + '}'
    }
    default:
      throw new TypeError(`${typeof value} values cannot be encoded`)
  }
}
