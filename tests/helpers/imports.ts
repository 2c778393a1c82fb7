import { readdirSync } from 'node:fs'
import { join, relative, sep } from 'node:path'
import { ROOT } from './form.js'

/** Every .ts file under `dir`, relative to ROOT. */
export function tsFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)).split(sep).join('/'))
    .sort()
}

/** The source without comments, so that an example in a doc comment is not taken for an import. */
export function stripComments(source: string): string {
  // keeps strings (a URL's `//` is not a comment); template literals hold no import specifiers we care about
  return source.replace(/('(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")|\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, (m, str: string | undefined) => str ?? ' ')
}

/**
 * The module specifiers a file names, by kind: static imports that load the module (also over several
 * lines, re-exports and side-effect imports), type-only ones (erased at build), and dynamic imports.
 */
export function importsOf(source: string): { loaded: string[]; typeOnly: string[]; dynamic: string[] } {
  const code = stripComments(source)
  const all = (re: RegExp) => [...code.matchAll(re)].map((m) => m[1])
  return {
    loaded: [...all(/\b(?:import|export)\s+(?!type\b)[^'";]*?\bfrom\s*['"]([^'"]+)['"]/g), ...all(/\bimport\s*['"]([^'"]+)['"]/g)],
    typeOnly: all(/\b(?:import|export)\s+type\b[^'";]*?\bfrom\s*['"]([^'"]+)['"]/g),
    dynamic: all(/\bimport\s*\(\s*['"]([^'"]+)['"]\s*[,)]/g),
  }
}

/** Every module specifier a file names: static imports (also over several lines), re-exports, side-effect and dynamic imports. */
export function specifiers(source: string): string[] {
  const { loaded, typeOnly, dynamic } = importsOf(source)
  return [...loaded, ...typeOnly, ...dynamic]
}
