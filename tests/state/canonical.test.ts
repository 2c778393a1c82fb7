import t from 'tap'
import { canonicalJson } from '../../plugins/state/lib/canonical.js'

// Every operation's hash and signed message are this encoding: a node whose encoding differed in
// one byte from another's would reject that node's operations as badly signed. The encoding was
// rewritten for speed, so it is held to its plain definition (sorted keys, JSON.stringify for
// everything else) on fixed cases and on random values.

/** the definition, written the obvious way */
function definition(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(definition).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${keys.map((k) => `${JSON.stringify(k)}:${definition((value as Record<string, unknown>)[k])}`).join(',')}}`
  }
  return JSON.stringify(value)
}

t.test('fixed cases encode as written', async (t) => {
  const cases: [unknown, string][] = [
    [{ b: 1, a: [true, null, 'x'], c: { z: -0, y: 1.5e-7 } }, '{"a":[true,null,"x"],"b":1,"c":{"y":1.5e-7,"z":0}}'],
    [{ k: undefined, v: 1 }, '{"v":1}'],
    [{}, '{}'],
    [[], '[]'],
    ['a"\\\n\u2028', JSON.stringify('a"\\\n\u2028')],
    // code-unit order: U+FF61 sorts after the surrogate pair of U+1F600 (0xD83D), though its code point is lower
    [{ '\uff61': 1, '\u{1F600}': 2, B: 3, a: 4 }, '{"B":3,"a":4,"😀":2,"｡":1}'],
    [Object.assign(Object.create(null), { y: 1, x: 2 }), '{"x":2,"y":1}'],
  ]
  cases.forEach(([value, expected], i) => t.equal(canonicalJson(value), expected, `case ${i + 1}`))
})

t.test('what JSON cannot hold is refused, not encoded', async (t) => {
  t.throws(() => canonicalJson(NaN), /finite/)
  t.throws(() => canonicalJson({ a: Infinity }), /finite/)
  t.throws(() => canonicalJson(new Date(0)), /plain objects/)
  t.throws(() => canonicalJson({ a: new Map() }), /plain objects/)
  t.throws(() => canonicalJson([1, undefined]), /undefined values/)
  t.throws(() => canonicalJson(10n), /bigint values/)
  // a hole in an array is refused too: the older encoding wrote nothing for it, which is not JSON
  // eslint-disable-next-line no-sparse-arrays
  t.throws(() => canonicalJson([1, , 2]), /undefined values/)
})

t.test('random values encode as the definition does', async (t) => {
  let seed = 12345
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
  const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)]
  const chars = ['a', 'B', 'z', '_', '0', '"', '\\', '\n', '\u00e9', '\u2028', '\uff61', '\u{1F600}', ' ']
  const str = () => Array.from({ length: Math.floor(rand() * 6) }, () => pick(chars)).join('')
  const gen = (depth: number): unknown => {
    const kind = Math.floor(rand() * (depth > 3 ? 5 : 7))
    if (kind === 0) return null
    if (kind === 1) return rand() < 0.5
    if (kind === 2) return pick([0, -1, 1.5, 1e21, -2.5e-8, Math.floor(rand() * 1e9), rand()])
    if (kind === 3 || kind === 4) return str()
    if (kind === 5) return Array.from({ length: Math.floor(rand() * 4) }, () => gen(depth + 1))
    const o: Record<string, unknown> = {}
    for (let i = Math.floor(rand() * 5); i > 0; i--) o[str()] = rand() < 0.1 ? undefined : gen(depth + 1)
    return o
  }
  let same = 0
  for (let i = 0; i < 3000; i++) {
    const v = gen(0)
    if (canonicalJson(v) === definition(v)) same++
    else t.fail(`differs for ${JSON.stringify(v)}: ${canonicalJson(v)} vs ${definition(v)}`)
  }
  t.equal(same, 3000)
})
