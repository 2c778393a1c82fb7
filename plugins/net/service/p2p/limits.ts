/** Limits hit, by setting name: what `form node status` shows (the total; which limits, with --json). */
export class LimitHits {
  private readonly hits: Record<string, number> = {}

  readonly count = (limit: string): void => void (this.hits[limit] = (this.hits[limit] ?? 0) + 1)

  total(): number {
    return Object.values(this.hits).reduce((a, b) => a + b, 0)
  }

  byLimit(): Record<string, number> {
    return { ...this.hits }
  }
}
