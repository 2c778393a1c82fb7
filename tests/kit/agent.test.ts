import t from 'tap'
import { stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { loadSigner } from '../../plugins/kit/index.js'
import { agentSocket, askAgent } from '../../plugins/kit/lib/agent.js'
import { recoverAddress } from '../../plugins/kit/lib/wallet.js'
import { form, makeEnv, startNode, until } from '../helpers/form.js'

t.test('kit unlock: one password, then signing needs none until kit lock', async (t) => {
  const fe = await makeEnv(t, { FORM_PASSWORD: undefined })
  const pw = join(fe.dir, 'pw')
  await writeFile(pw, 'correct horse battery\n')
  const made = await form(fe, ['kit', 'init', '--yes', '--password-file', pw, '--json'])
  t.equal(made.code, 0, made.stderr)
  const address = JSON.parse(made.stdout).address.toLowerCase()
  t.teardown(() => form(fe, ['kit', 'lock']))

  const wrong = join(fe.dir, 'wrong')
  await writeFile(wrong, 'wrong password')
  const refused = await form(fe, ['kit', 'unlock', '--password-file', wrong])
  t.equal(refused.code, 1, 'a wrong password unlocks nothing')
  t.equal(await askAgent(agentSocket(fe.runtimeDir), { op: 'address' }), undefined, 'and starts no agent')

  const unlock = await form(fe, ['kit', 'unlock', '--password-file', pw, '--timeout', '10m', '--json'])
  t.equal(unlock.code, 0, unlock.stderr)
  const socket = agentSocket(fe.runtimeDir)
  t.equal(JSON.parse(unlock.stdout).socket, socket)
  t.equal((await stat(socket)).mode & 0o777, 0o600, 'the socket is private to the user')
  t.equal((await stat(fe.runtimeDir)).mode & 0o077, 0, 'and so is its directory')
  t.notMatch(unlock.stdout + unlock.stderr, /correct horse/, 'the password is not printed')
  t.match(JSON.parse((await form(fe, ['kit', 'show', '--json'])).stdout).unlockedUntil, /^\d{4}-/, 'kit show says until when')

  // in-process: no password source at all, and two signatures
  const env = { ...fe.env, FORM_PASSWORD: undefined }
  const signer = await loadSigner({ configDir: fe.configDir, runtimeDir: fe.runtimeDir, env } as never)
  t.equal(signer.address.toLowerCase(), address)
  for (const fill of [1, 2]) {
    const digest = new Uint8Array(32).fill(fill)
    t.equal(recoverAddress(digest, signer.sign(digest)), address, `signature ${fill} is the wallet's`)
  }
  const answer = await askAgent(socket, { op: 'export' })
  t.same(answer, { error: 'unknown request' }, 'the agent signs; it has no way to hand out the key')

  // through the CLI: a signing command (the request reaches the node signed, which then finds no such build)
  const node = await startNode(fe)
  t.teardown(() => node.stop())
  const logs = ['pack', 'logs', '--build-id', 'a'.repeat(64)]
  for (const run of [1, 2]) {
    const r = await form(fe, logs)
    // the node checked the signature and looked for this wallet's build: the agent signed
    t.match(r.stderr, /error\[BUILD_NOT_FOUND\]: you have no build a{64} on this node/, `signing command ${run} needed no password`)
  }
  // pack cancel signs before it looks: it reaches the node through the agent too
  const cancel = await form(fe, ['pack', 'cancel', '--build-id', 'a'.repeat(64)])
  t.match(cancel.stderr, /error\[BUILD_NOT_FOUND\]: you have no build a{64}/, 'pack cancel needed no password')

  const lock = await form(fe, ['kit', 'lock'])
  t.equal(lock.code, 0)
  t.match(lock.stdout, /wallet locked/)
  await until('the socket to go', async () => ((await stat(socket).catch(() => undefined)) ? undefined : true), 5000)
  const after = await form(fe, logs)
  t.match(after.stderr, /error\[PASSWORD_REQUIRED\].*\n.*form kit unlock/, 'after lock a password is needed again')
  // kit unlock itself, with no password source and no terminal, does not suggest running kit unlock
  const unlockNoPassword = await form(fe, ['kit', 'unlock'])
  t.match(unlockNoPassword.stderr, /error\[PASSWORD_REQUIRED\]: a password is needed to unlock your wallet.*\n {2}hint: pass --password-file FILE or set FORM_PASSWORD\n/)
  t.notMatch(unlockNoPassword.stderr, /form kit unlock/, 'kit unlock does not suggest itself')
  t.match((await form(fe, ['kit', 'lock'])).stdout, /no wallet agent was running/)
  t.match((await form(fe, ['kit', 'show'])).stdout, /unlocked: no \(form kit unlock\)/)
})

t.test('the agent ends by itself after --timeout, and refuses another wallet\'s use', async (t) => {
  const fe = await makeEnv(t, { FORM_PASSWORD: undefined })
  const pw = join(fe.dir, 'pw')
  await writeFile(pw, 'pw-one-two-three')
  t.equal((await form(fe, ['kit', 'init', '--yes', '--password-file', pw])).code, 0)
  t.teardown(() => form(fe, ['kit', 'lock']))
  t.equal((await form(fe, ['kit', 'unlock', '--password-file', pw, '--timeout', '2s'])).code, 0)
  const socket = agentSocket(fe.runtimeDir)
  t.ok(await askAgent(socket, { op: 'address' }), 'it runs')

  // another user config (another wallet) does not get this agent's signatures
  const other = await makeEnv(t, { FORM_PASSWORD: undefined })
  t.equal((await form(other, ['kit', 'init', '--yes', '--password-file', pw])).code, 0)
  await t.rejects(loadSigner({ configDir: other.configDir, runtimeDir: fe.runtimeDir, env: { ...other.env, FORM_PASSWORD: undefined } } as never), { code: 'PASSWORD_REQUIRED' })

  await until('the agent to time out', async () => ((await askAgent(socket, { op: 'address' })) ? undefined : true), 15_000)
  t.notOk(await stat(socket).catch(() => undefined), 'it removed its socket')
  t.match((await form(fe, ['kit', 'unlock', '--timeout', 'forever'])).stderr, /--timeout "forever" is not a duration/)
})
