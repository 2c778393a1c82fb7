/**
 * Who may write what: one table, consulted identically on every replica. Each rule depends only on
 * the operation itself (its key and its verified author), never on other records, so a replica
 * judges an operation the same way whatever order operations arrive in.
 *
 * Keys are '/'-separated; `{owner}` marks the segment that must equal the author's address.
 */
export interface Rule {
  collection: string
  pattern: string
  description: string
}

export const RULES: Rule[] = [
  { collection: 'accounts', pattern: '{owner}', description: 'an account writes its own record' },
  { collection: 'nodes', pattern: '{owner}', description: 'a node writes its own record (peer id, addresses, capacity, heartbeat)' },
  { collection: 'cidrs', pattern: '*/{owner}', description: 'a node claims a formnet subnet: cidrs/<subnet>/<node>' },
  { collection: 'peers', pattern: '{owner}/*', description: 'a node writes the formnet peers it admitted: peers/<node>/<peer>' },
  { collection: 'builds', pattern: '{owner}/*', description: 'the owner writes a build request: builds/<owner>/<build>' },
  { collection: 'builds', pattern: '*/*/status/{owner}', description: 'a builder node writes progress and result: builds/<owner>/<build>/status/<node>' },
  { collection: 'instances', pattern: '{owner}/*/desired', description: 'the owner writes desired state: instances/<owner>/<id>/desired' },
  { collection: 'instances', pattern: '*/*/observed/{owner}', description: 'a hosting node writes what it observes: instances/<owner>/<id>/observed/<node>' },
  { collection: 'dns', pattern: '{owner}/*', description: 'an account writes its names: dns/<owner>/<name>' },
]

export const COLLECTIONS = [...new Set(RULES.map((r) => r.collection))]

const SEGMENT = /^[A-Za-z0-9._:@+=-]{1,128}$/

/** Why a key is malformed, or undefined when it is fine. */
export function checkKey(key: string): string | undefined {
  if (key.length === 0 || key.length > 512) return 'keys are 1-512 characters'
  for (const seg of key.split('/')) {
    if (!SEGMENT.test(seg)) return `key segment "${seg}" must be 1-128 of A-Z a-z 0-9 . _ : @ + = -`
    // keys turn into paths and URLs in places; dot segments would be ambiguous there
    if (seg === '.' || seg === '..') return `key segment "${seg}" is not allowed`
  }
  return undefined
}

function matches(pattern: string, key: string, author: string): boolean {
  const p = pattern.split('/')
  const k = key.split('/')
  if (p.length !== k.length) return false
  return p.every((seg, i) => (seg === '*' ? true : seg === '{owner}' ? k[i] === author : seg === k[i]))
}

/** The reason an author may not write this key, or undefined when a rule allows it. */
export function authorize(collection: string, key: string, author: string): string | undefined {
  const rules = RULES.filter((r) => r.collection === collection)
  if (rules.length === 0) return `unknown collection "${collection}" (known: ${COLLECTIONS.join(', ')})`
  if (rules.some((r) => matches(r.pattern, key, author))) return undefined
  return `${author} may not write ${collection}/${key}: ${rules.map((r) => r.description).join('; ')}`
}
