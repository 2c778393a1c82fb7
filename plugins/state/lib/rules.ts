import { FormError } from '../../../core/errors.js'
import type { CollectionDeclaration, CollectionRule, CollectionWriter } from '../../../core/plugin.js'

/**
 * Who may write what, built from the collections the plugins declare and consulted identically on
 * every replica. Each rule depends only on the operation itself (its key, its verified author and
 * its value), never on other records, so a replica judges an operation the same way whatever order
 * operations arrive in. Membership (who counts) is the read side's business (membership.ts).
 *
 * Keys are '/'-separated; `{owner}` marks the segment that must equal the author's address.
 */
export class Rules {
  private readonly byCollection = new Map<string, (CollectionRule & { segments: string[] })[]>()

  constructor(readonly declarations: CollectionDeclaration[]) {
    for (const d of declarations) {
      if (this.byCollection.has(d.name)) {
        throw new FormError('STATE_COLLECTION_CONFLICT', `state collection "${d.name}" is declared by two plugins`, { hint: 'remove one of them (`form plugin list`, `form plugin remove NAME`)' })
      }
      this.byCollection.set(
        d.name,
        d.rules.map((r) => ({ ...r, segments: r.pattern.split('/') })),
      )
    }
  }

  get names(): string[] {
    return [...this.byCollection.keys()]
  }

  /** The rule that lets `author` write collection/key, or why none does. */
  authorize(collection: string, key: string, author: string): { rule: CollectionRule } | { denied: string } {
    const rules = this.byCollection.get(collection)
    if (!rules) return { denied: `unknown collection "${collection}" (known: ${this.names.join(', ')})` }
    const k = key.split('/')
    const rule = rules.find((r) => matches(r.segments, k, author))
    return rule ? { rule } : { denied: `${author} may not write ${collection}/${key}: ${rules.map((r) => r.description).join('; ')}` }
  }

  /** Why the value does not fit the rule's schema, or undefined. */
  checkValue(rule: CollectionRule, value: unknown): string | undefined {
    const errors: string[] = []
    if (rule.schema(value, { errors })) return undefined
    return `the value does not fit ${rule.description}: ${errors.slice(0, 3).join('; ')}`
  }

  /**
   * Who must have written a stored record for it to count (the key alone decides, as the key names
   * its author); undefined for an unknown collection or a key no rule matches.
   */
  writerOf(collection: string, key: string): CollectionWriter | undefined {
    const rules = this.byCollection.get(collection)
    if (!rules) return undefined
    const k = key.split('/')
    return rules.find((r) => r.segments.length === k.length && r.segments.every((s, i) => s === '*' || s === '{owner}' || s === k[i]))?.writer
  }
}

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

function matches(p: string[], k: string[], author: string): boolean {
  if (p.length !== k.length) return false
  return p.every((seg, i) => (seg === '*' ? true : seg === '{owner}' ? k[i] === author : seg === k[i]))
}
