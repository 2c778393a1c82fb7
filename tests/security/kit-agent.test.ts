import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { createConnection } from 'node:net'
import { join } from 'node:path'
import { agentSocket, askAgent } from '../../plugins/kit/lib/agent.js'
import { recoverAddress, walletFromPrivateKey } from '../../plugins/kit/lib/wallet.js'
import { form, makeEnv } from '../helpers/form.js'

const KEY = '4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318'

/** Sends raw bytes to the agent and returns what it answered before closing (or '' when it hung up). */
function raw(socket: string, data: string): Promise<string> {
  return new Promise((resolve) => {
    const c = createConnection(socket)
    let out = ''
    c.on('connect', () => c.write(data))
    c.on('data', (d) => (out += d))
    c.on('close', () => resolve(out))
    c.on('error', () => resolve(out))
  })
}

t.test('the wallet agent: other users cannot reach it, the key is not visible, bad requests change nothing', async (t) => {
  const fe = await makeEnv(t, { FORM_PASSWORD: undefined })
  const keyFile = join(fe.dir, 'key')
  await writeFile(keyFile, KEY)
  const pw = join(fe.dir, 'pw')
  await writeFile(pw, 'agent-attack-pass')
  t.equal((await form(fe, ['kit', 'init', '--yes', '--import-private-key-file', keyFile, '--password-file', pw])).code, 0)
  t.teardown(() => form(fe, ['kit', 'lock']))
  const unlock = await form(fe, ['kit', 'unlock', '--password-file', pw, '--json'])
  t.equal(unlock.code, 0, unlock.stderr)
  const { pid } = JSON.parse(unlock.stdout) as { pid: number }
  const socket = agentSocket(fe.runtimeDir)
  const address = walletFromPrivateKey(KEY).address

  // another local user: nobody (uid 65534) may not even reach the socket
  const setpriv = '/usr/bin/setpriv'
  const node = '/usr/bin/node'
  const needs = process.getuid?.() !== 0 ? 'root (to act as another user)' : !existsSync(setpriv) ? 'setpriv (util-linux)' : !existsSync(node) ? '/usr/bin/node' : false
  await t.test('another user cannot reach the socket', { skip: needs ? `needs ${needs}` : false }, async (t) => {
    const script = `require('net').createConnection(${JSON.stringify(socket)}).on('connect', () => console.log('connected')).on('error', (e) => console.log(e.code))`
    const other = spawnSync(setpriv, ['--reuid=65534', '--regid=65534', '--clear-groups', node, '-e', script], { encoding: 'utf8', cwd: '/' })
    t.equal(other.stdout.trim(), 'EACCES', `nobody (uid 65534) is refused (${other.stderr.trim()})`)
  })

  // the key is in neither the agent's command line nor its environment (both readable in /proc)
  for (const file of ['cmdline', 'environ']) {
    const text = readFileSync(`/proc/${pid}/${file}`, 'utf8')
    t.notOk(text.includes(KEY), `not in /proc/<agent>/${file}`)
  }

  // hostile requests: each gets an error or a hang-up, and the agent keeps signing
  t.match(await raw(socket, 'x'.repeat(5000)), '', 'an over-long line is cut off')
  t.match(await raw(socket, '{"op":"sign","digest":"zz"}\n'), /unknown request/)
  t.match(await raw(socket, '{"op":"sign","digest":"' + 'a'.repeat(66) + '"}\n'), /unknown request/, 'a digest that is not 32 bytes')
  t.match(await raw(socket, 'not json\n'), /not JSON/)
  t.match(await raw(socket, '{"op":"key"}\n'), /unknown request/, 'there is no request that returns the key')
  const digest = 'ab'.repeat(32)
  const signed = await askAgent(socket, { op: 'sign', digest })
  t.equal(recoverAddress(Buffer.from(digest, 'hex'), Buffer.from(signed!.signature!, 'hex')), address, 'the agent still signs, with the right key')
})
