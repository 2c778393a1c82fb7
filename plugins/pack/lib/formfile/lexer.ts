/**
 * Turns Formfile text into logical lines (comments dropped, `\` continuations joined) and splits
 * instruction arguments into words the way a shell would (quotes group, backslash escapes), keeping
 * for every character its original line and column so diagnostics point at the real source.
 */

export interface Position {
  line: number
  column: number
}

export interface LogicalLine {
  text: string
  /** position of each character of `text` in the file */
  positions: Position[]
  /** where the logical line starts */
  start: Position
  /** set when the file ends in the middle of a continuation */
  danglingContinuation?: Position
}

export function logicalLines(source: string): LogicalLine[] {
  const physical = source.replace(/^\uFEFF/, '').split(/\r?\n/)
  const out: LogicalLine[] = []
  let current: LogicalLine | undefined
  for (let i = 0; i < physical.length; i++) {
    const raw = physical[i]
    const trimmed = raw.trim()
    // Comment and blank lines are dropped even inside a continuation, as Dockerfiles do.
    if (trimmed.startsWith('#') || trimmed === '') continue
    const continued = trimmed.endsWith('\\')
    const content = continued ? raw.replace(/\\\s*$/, '') : raw
    const line: LogicalLine = current ?? { text: '', positions: [], start: { line: i + 1, column: raw.length - raw.trimStart().length + 1 } }
    for (let c = 0; c < content.length; c++) {
      line.text += content[c]
      line.positions.push({ line: i + 1, column: c + 1 })
    }
    if (continued) {
      current = line
      current.danglingContinuation = { line: i + 1, column: raw.lastIndexOf('\\') + 1 }
    } else {
      delete line.danglingContinuation
      out.push(line)
      current = undefined
    }
  }
  if (current) out.push(current)
  return out
}

export interface Word {
  /** the value with quotes removed and escapes applied */
  value: string
  /** offsets into the logical line's text */
  start: number
  end: number
  /** true when any part was quoted */
  quoted: boolean
}

export interface SplitResult {
  words: Word[]
  /** offset of an opening quote that was never closed */
  unterminated?: number
}

/**
 * Shell-like word splitting of `text` from `offset` on. With `template`, the words are ENV value
 * templates (see env.ts): a `$` or `\\` that must stay literal (single-quoted, or escaped with a
 * backslash) comes out escaped as `\\$` or `\\\\`, so `$NAME` alone still names a variable.
 */
export function splitWords(text: string, offset = 0, template = false): SplitResult {
  const words: Word[] = []
  let i = offset
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i])) i++
    if (i >= text.length) break
    const start = i
    let value = ''
    let quoted = false
    while (i < text.length && !/\s/.test(text[i])) {
      const ch = text[i]
      if (ch === '"' || ch === "'") {
        quoted = true
        const open = i++
        while (i < text.length && text[i] !== ch) {
          if (template && ch === "'") {
            value += text[i] === '$' || text[i] === '\\' ? `\\${text[i++]}` : text[i++]
            continue
          }
          if (template && ch === '"' && text[i] === '\\') {
            const next = text[i + 1]
            if (next === '"') value += '"'
            else if (next === '$' || next === '\\') value += `\\${next}`
            else {
              value += '\\\\'
              i++
              continue
            }
            i += 2
            continue
          }
          if (ch === '"' && text[i] === '\\' && (text[i + 1] === '"' || text[i + 1] === '\\')) i++
          value += text[i++]
        }
        if (i >= text.length) return { words, unterminated: open }
        i++
      } else if (ch === '\\' && i + 1 < text.length) {
        value += template && (text[i + 1] === '$' || text[i + 1] === '\\') ? `\\${text[i + 1]}` : text[i + 1]
        i += 2
      } else {
        value += template && ch === '\\' ? '\\\\' : ch
        i++
      }
    }
    words.push({ value, start, end: i, quoted })
  }
  return { words }
}

/** Quotes a word for printing so that splitWords gives it back unchanged. */
export function quoteWord(value: string): string {
  if (value !== '' && /^[A-Za-z0-9_@%+=:,./$-]+$/.test(value)) return value
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
}

/** Quotes an ENV value template for printing so that splitWords(..., true) gives it back unchanged. */
export function quoteTemplate(value: string): string {
  if (value !== '' && /^[A-Za-z0-9_@%+=:,./$-]+$/.test(value)) return value
  return `"${value.replace(/"/g, '\\"')}"`
}
