import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

let root: string | undefined

/**
 * The installed package's root (where templates/ lives). Found by walking up from this module, so it
 * works from the TypeScript sources and from the bundle in dist/ alike.
 */
export function packageRoot(): string {
  if (root) return root
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const manifest = join(dir, 'package.json')
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'formation-cli') return (root = dir)
    const up = dirname(dir)
    if (up === dir) throw new Error('cannot find the formation-cli package root')
    dir = up
  }
}
