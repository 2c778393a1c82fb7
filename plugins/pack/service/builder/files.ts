import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { FormError } from '../../../../core/errors.js'
import type { Logger } from '../../../../core/log.js'
import { ADDRESS } from '../../../../core/patterns.js'
import { publicFailure, REQUEST_ID, type BuildFailure, type BuildRequest } from '../../lib/builds.js'


/** A build request as its owner made it on this node: kept in requests/<owner>/<request>.json, never replicated. */
export interface StoredRequest {
  build: string
  name: string
  context: string
  formfile: string
  lines?: number[]
  createdAt: number
}

/** Kills the build VMs (QEMU with `-name form-build`, see lib/builder/vm.ts) still running in `workDir` after a crash. */
async function killOrphanBuilds(workDir: string, log: Logger): Promise<void> {
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue
    const args = (await readFile(`/proc/${pid}/cmdline`).catch(() => Buffer.alloc(0))).toString().split('\0')
    if (args.includes('form-build') && args.some((a) => a.startsWith(`${workDir}/`))) {
      log.warn('stopping a build command left by an earlier run of the node', { pid: Number(pid) })
      try {
        process.kill(Number(pid), 'SIGKILL')
      } catch {
        // already gone
      }
    }
  }
}

/**
 * Where the builder keeps its files. Everything an owner sent or a build made is kept under that
 * owner's address: contexts/<owner>/, requests/<owner>/, logs/<owner>/, so no lookup by a public id
 * can reach another wallet's files.
 */
export class BuilderFiles {
  readonly dirs: { contexts: string; uploads: string; requests: string; work: string; logs: string; images: string; cache: string }

  private constructor(root: string, cacheDir: string) {
    this.dirs = {
      contexts: join(root, 'contexts'),
      uploads: join(root, 'incoming'),
      requests: join(root, 'requests'),
      work: join(root, 'work'),
      logs: join(root, 'logs'),
      // images/<manifest hash>/: hard links to the image's blobs, so the cache sees (and evicts) what they hold
      images: join(root, 'images'),
      cache: cacheDir,
    }
  }

  /** Creates the directories and clears what a node killed mid-way left; `builds`: whether this node may build (stale build networks are removed then). */
  static async open(root: string, cacheDir: string, builds: boolean, log: Logger): Promise<BuilderFiles> {
    const files = new BuilderFiles(root, cacheDir)
    const dirs = files.dirs
    for (const d of Object.values(dirs)) await mkdir(d, { recursive: true, mode: 0o700 })
    // an upload the node was killed in the middle of
    for (const name of await readdir(dirs.uploads)) await rm(join(dirs.uploads, name), { force: true })
    // contexts and Formfiles kept by id alone (before they were kept per owner) can be no one's: they go
    for (const name of await readdir(dirs.contexts)) if (!ADDRESS.test(name)) await rm(join(dirs.contexts, name), { recursive: true, force: true })
    // A build the node was killed in: its build VM dies with the node's pipe (lib/builder/vm.ts), or is
    // stopped here; nothing of it is mounted on the host, so its work directory just goes.
    await killOrphanBuilds(dirs.work, log)
    // and the network namespaces and NAT rules of those build VMs (see lib/builder/net.ts)
    if (builds) await (await import('../../lib/builder/net.js')).removeStaleBuildNetworks(dirs.work).catch(() => {})
    for (const name of await readdir(dirs.work)) await rm(join(dirs.work, name), { recursive: true, force: true })
    return files
  }

  readonly ownerDir = (base: string, owner: string): string => {
    if (!ADDRESS.test(owner)) throw new FormError('BUILD_BAD_REQUEST', `"${owner}" is not a wallet address`, { httpStatus: 400 })
    return join(base, owner)
  }
  readonly contextFile = (owner: string, context: string) => join(this.ownerDir(this.dirs.contexts, owner), `${context}.tar.gz`)
  readonly requestFile = (owner: string, request: string) => join(this.ownerDir(this.dirs.requests, owner), `${request}.json`)
  readonly logFile = (owner: string, build: string, request: string) => join(this.ownerDir(this.dirs.logs, owner), build, `${request}.log`)
  readonly failureFile = (owner: string, build: string, request: string) => join(this.ownerDir(this.dirs.logs, owner), build, `${request}.failure.json`)
  // per owner and request: another wallet naming my request id never shares my work directory
  readonly workDir = (owner: string, request: string) => join(this.dirs.work, createHash('sha256').update(`${owner}/${request}`).digest('hex').slice(0, 16))

  /** The request `req` names, if its owner made it here for this build from a context they uploaded; else why not. */
  readonly ownRequest = async (owner: string, build: string, req: BuildRequest): Promise<StoredRequest | BuildFailure> => {
    const stored = REQUEST_ID.test(req.request) ? await readFile(this.requestFile(owner, req.request), 'utf8').then((t) => JSON.parse(t) as StoredRequest).catch(() => undefined) : undefined
    if (!stored) return publicFailure('BUILD_UNKNOWN_REQUEST', `this node holds no build request ${req.request} made by ${owner}; request ids are given by the builder to the wallet that asks`)
    if (stored.build !== build || stored.context !== req.context) return publicFailure('BUILD_REQUEST_MISMATCH', `build request ${req.request} was made for another build or context than the record names`)
    if (!existsSync(this.contextFile(owner, stored.context))) return publicFailure('BUILD_NO_CONTEXT', `context ${stored.context} uploaded by ${owner} is no longer on this node`)
    return stored
  }
}
