import type { StateRecord } from '../../lib/store.js'

export function encodePath(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/')
}

export function describeRecord(r: StateRecord): string {
  return `${r.collection}/${r.key}  ${r.deleted ? '(deleted) ' : ''}by ${r.author} at ${new Date(r.t.ms).toISOString()} op ${r.hash.slice(0, 12)}`
}

/** One line per record: key, then the value as compact JSON, cut to the terminal-friendly width. */
export function recordLine(r: StateRecord, width = 160): string {
  const value = r.deleted ? '(deleted)' : JSON.stringify(r.value)
  const line = `${r.key}  ${value}`
  return line.length > width ? line.slice(0, width - 1) + '…' : line
}
