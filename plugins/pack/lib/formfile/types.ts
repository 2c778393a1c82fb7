import type { HealthCheck } from '../../../node/index.js'

export type { HealthCheck }

/** The typed Formfile: what validation produces and the image builder consumes. */

export interface FormfileUser {
  username: string
  /** SHA-512 crypt ($6$) hash; never the plain password */
  passwordHash?: string
  lockPasswd: boolean
  sudo: boolean
  shell: string
  sshPwauth: boolean
  disableRoot: boolean
  chpasswdExpire: boolean
  groups: string[]
  sshAuthorizedKeys: string[]
}

export type EnvScope = { kind: 'system' } | { kind: 'user'; name: string } | { kind: 'service'; name: string }

export type Step =
  | { kind: 'copy'; sources: string[]; destination: string; line: number }
  | { kind: 'run'; command: string; argv?: string[]; line: number }
  | { kind: 'install'; packages: string[]; line: number }
  | { kind: 'workdir'; path: string; line: number }
  | { kind: 'user'; username: string; line: number }
  | { kind: 'env'; scope: EnvScope; vars: Record<string, string>; line: number }

export interface ExposedPort {
  port: number
  /** last port of a range */
  endPort?: number
  protocol: 'tcp' | 'udp'
}

export interface Formfile {
  name: string
  /** true when NAME was absent and the name came from the directory */
  nameGenerated: boolean
  description?: string
  resources: { vcpus: number; memoryMb: number; diskGb: number; gpu?: { model: string; count: number } }
  users: FormfileUser[]
  workdir?: string
  /** build steps in file order */
  steps: Step[]
  /** merged environment by scope, after all ENV instructions */
  env: { system: Record<string, string>; users: Record<string, Record<string, string>>; services: Record<string, Record<string, string>> }
  entrypoint?: { form: 'exec' | 'shell'; argv: string[]; command?: string }
  expose: ExposedPort[]
  /**
   * The HEALTHCHECK lines: undefined when there are none (every EXPOSEd TCP port then gets a TCP
   * check, see healthChecks), empty for `HEALTHCHECK none`.
   */
  healthchecks?: HealthCheck[]
}
