import t from 'tap'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { PassThrough } from 'node:stream'
import { join } from 'node:path'
import { Cli } from 'clipanion'
import { form, makeEnv, type Result } from '../helpers/form.js'
import { KitInitCommand } from '../../plugins/kit/commands/init.js'
import { KitShowCommand } from '../../plugins/kit/commands/show.js'
import { promptHooks } from '../../plugins/kit/commands/run/prompt.js'
import { walletFromMnemonic } from '../../plugins/kit/lib/wallet.js'

const MNEMONIC = 'legal winner thank year wave sausage worth useful legal winner thank yellow'
const IMPORTED = walletFromMnemonic(MNEMONIC)
const secrets: string[] = [MNEMONIC, Buffer.from(IMPORTED.privateKey).toString('hex')]
const captured: string[] = []
const keep = (r: Result) => (captured.push(r.stdout, r.stderr), r)

t.test('flag-only path: init --yes, show, re-run keeps the wallet, import, export', async (t) => {
  const fe = await makeEnv(t)
  const pw = join(fe.dir, 'pw')
  await writeFile(pw, 'hunter2-but-longer\n')
  const init = keep(await form(fe, ['kit', 'init', '--yes', '--password-file', pw, '--host', 'http://10.9.0.1:3004', '--no-join-formnet', '--json']))
  t.equal(init.code, 0, init.stderr)
  const created = JSON.parse(init.stdout)
  t.match(created, { address: /^0x[0-9a-fA-F]{40}$/, keystore: join(fe.configDir, 'keystore.json'), hosts: ['http://10.9.0.1:3004'], formnet: { join: false }, created: true })
  t.equal((await stat(created.keystore)).mode & 0o777, 0o600)
  const ks = JSON.parse(await readFile(created.keystore, 'utf8'))
  t.equal(ks.version, 3)

  // learn the generated secrets (deliberate exports are not part of the captured output)
  const generatedKey = await form(fe, ['kit', 'export', '--yes-i-understand', '--password-file', pw])
  const generatedPhrase = await form(fe, ['kit', 'export', '--mnemonic', '--yes-i-understand', '--password-file', pw])
  t.match(generatedKey.stdout, /^0x[0-9a-f]{64}\n$/)
  t.equal(generatedPhrase.stdout.trim().split(' ').length, 12)
  secrets.push(generatedKey.stdout.trim().slice(2), generatedPhrase.stdout.trim())

  const show = keep(await form(fe, ['kit', 'show', '--json']))
  t.match(JSON.parse(show.stdout), { address: created.address, keystore: created.keystore })

  const again = keep(await form(fe, ['kit', 'init', '--yes', '--json']))
  t.equal(again.code, 0, again.stderr)
  t.match(JSON.parse(again.stdout), { address: created.address, created: false, hosts: ['http://10.9.0.1:3004'], formnet: { join: false } }, 're-running keeps the wallet and the earlier answers')

  const words = join(fe.dir, 'words.txt')
  await writeFile(words, MNEMONIC + '\n')
  const refused = keep(await form(fe, ['kit', 'init', '--yes', '--import-mnemonic-file', words, '--password-file', pw]))
  t.equal(refused.code, 1)
  t.match(refused.stderr, /error\[FILE_EXISTS\]: .*keystore\.json already exists/)
  const imported = keep(await form(fe, ['kit', 'init', '--yes', '--import-mnemonic-file', words, '--password-file', pw, '--force', '--json']))
  t.equal(imported.code, 0, imported.stderr)
  t.equal(JSON.parse(imported.stdout).address.toLowerCase(), IMPORTED.address)

  const noConfirm = keep(await form(fe, ['kit', 'export', '--password-file', pw]))
  t.equal(noConfirm.code, 1)
  t.match(noConfirm.stderr, /CONFIRMATION_REQUIRED/)
  const wrong = join(fe.dir, 'wrong')
  await writeFile(wrong, 'nope')
  const bad = keep(await form(fe, ['kit', 'export', '--yes-i-understand', '--password-file', wrong]))
  t.match(bad.stderr, /error\[KEYSTORE_WRONG_PASSWORD\]/)

  // the deliberate export is the only output allowed to hold the secrets
  const key = await form(fe, ['kit', 'export', '--yes-i-understand', '--password-file', pw])
  t.equal(key.stdout.trim(), '0x' + Buffer.from(IMPORTED.privateKey).toString('hex'))
  const phrase = await form(fe, ['kit', 'export', '--mnemonic', '--yes-i-understand', '--json'], { input: '' })
  t.match(JSON.parse(phrase.stdout), { error: { code: 'PASSWORD_REQUIRED', hint: /--password-file/ } }, 'no terminal and no password source')
  const env = await form({ ...fe, env: { ...fe.env, FORM_PASSWORD: 'hunter2-but-longer' } }, ['kit', 'export', '--mnemonic', '--yes-i-understand'])
  t.equal(env.stdout.trim(), MNEMONIC)

  const noTty = keep(await form(fe, ['kit', 'init']))
  t.match(noTty.stderr, /error\[NO_TERMINAL\][\s\S]*--yes/)
})

t.test('the wizard, driven through its real prompts', async (t) => {
  const fe = await makeEnv(t)
  const words = join(fe.dir, 'words.txt')
  await writeFile(words, MNEMONIC)
  const answers: Record<string, unknown> = {
    action: 'import-mnemonic',
    file: words,
    keystore: join(fe.dir, 'wallet', 'ks.json'),
    hosts: 'http://10.1.1.1:3004, http://10.1.1.2:3004',
    joinFormnet: true,
    password: 'wizard-pass',
    again: 'wizard-pass',
  }
  const asked: string[] = []
  promptHooks.onPrompt = (prompt) => {
    const p = prompt as { name: string; choices?: { name: string }[]; input: string; once(e: string, f: () => void): void; keypress(ch: string | null, key?: object): Promise<void>; submit(): Promise<void> }
    p.once('run', async () => {
      asked.push(p.name)
      const a = answers[p.name]
      if (p.choices) {
        const i = p.choices.findIndex((c) => c.name === a)
        for (let k = 0; k < i; k++) await p.keypress(null, { name: 'down' })
      } else if (typeof a === 'boolean') await p.keypress(a ? 'y' : 'n')
      else {
        p.input = ''
        for (const ch of String(a)) await p.keypress(ch)
      }
      await p.submit()
    })
  }
  t.teardown(() => (promptHooks.onPrompt = undefined))
  const stdin = Object.assign(new PassThrough(), { isTTY: true, setRawMode: () => {} })
  const out = new PassThrough()
  const err = new PassThrough()
  let text = ''
  out.on('data', (d) => (text += d))
  err.on('data', (d) => captured.push(String(d)))
  const cli = new Cli({ binaryName: 'form' })
  cli.register(KitInitCommand)
  cli.register(KitShowCommand)
  const ctx = { ...Cli.defaultContext, stdin, stdout: out, stderr: err, plugins: [], problems: [], version: 'test', overrides: { configDir: fe.configDir } } as never
  const code = await cli.run(['kit', 'init', '--json'], ctx)
  captured.push(text)
  t.equal(code, 0, text)
  t.same(asked, ['action', 'file', 'keystore', 'hosts', 'joinFormnet', 'password', 'again'])
  const result = JSON.parse(text)
  t.equal(result.address.toLowerCase(), IMPORTED.address)
  t.same(result.hosts, ['http://10.1.1.1:3004', 'http://10.1.1.2:3004'])
  t.equal((await stat(answers.keystore as string)).mode & 0o777, 0o600)

  // re-running offers the current values as defaults: accept every default
  const defaults: Record<string, unknown> = {}
  promptHooks.onPrompt = (prompt) => {
    const p = prompt as { name: string; initial: unknown; once(e: string, f: () => void): void; submit(): Promise<void> }
    p.once('run', async () => {
      defaults[p.name] = p.initial
      await p.submit()
    })
  }
  text = ''
  t.equal(await cli.run(['kit', 'init', '--json'], ctx), 0)
  t.match(defaults, { keystore: answers.keystore, hosts: 'http://10.1.1.1:3004,http://10.1.1.2:3004', joinFormnet: true })
  t.match(JSON.parse(text), { created: false, address: result.address })
})

t.test('operator config: flags write TOML that the node reads; bad values name the flag', async (t) => {
  const fe = await makeEnv(t)
  const file = join(fe.dir, 'operator.toml')
  const pw = join(fe.dir, 'pw')
  await writeFile(pw, 'operator-pass')
  fe.env.FORM_PASSWORD = 'operator-pass'
  const r = await form(fe, ['kit', 'operator', '--yes', '--password-file', pw, '--output', file, '--vcpus', '8', '--memory-mb', '16384', '--bootstrap', '/ip4/127.0.0.1/tcp/3010/p2p/12D3KooWabc', '--hypervisor', 'qemu'])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /operator 0x[0-9a-fA-F]{40} \(keystore .*operator-key\.json\)/)
  const operatorKeystore = JSON.parse(await readFile(join(fe.configDir, 'operator-key.json'), 'utf8'))
  t.equal(operatorKeystore.version, 3, 'the operator key is a v3 keystore like the wallet')
  t.equal((await stat(join(fe.configDir, 'operator-key.json'))).mode & 0o777, 0o600)
  const TOML = (await import('@iarna/toml')).default
  t.match(TOML.parse(await readFile(file, 'utf8')), { node: { hypervisor: 'qemu', resources: { vcpus: 8, memory_mb: 16384 } }, net: { bootstrap: ['/ip4/127.0.0.1/tcp/3010/p2p/12D3KooWabc'], formnet_cidr: '198.18.0.0/15' } })
  const { loadOperatorConfig, resolveSections } = await import('../../core/config.js')
  const { builtinPlugins } = await import('../../app/builtins.js')
  const loaded = await loadOperatorConfig(file, true)
  t.match(resolveSections(loaded.file, loaded.raw, builtinPlugins).node.resources, { vcpus: 8 }, 'the node accepts what the wizard wrote')
  for (const [args, message] of [
    [['--vcpus', 'lots'], /--vcpus must be a whole number \(got "lots"\)/],
    [['--vcpus', '0'], /--vcpus: expected to be at least 1 \(got 0\)/],
    [['--formnet-cidr', '10.0.0.0'], /--formnet-cidr: expected an IPv4 CIDR such as 10\.20\.0\.0\/16 \(got "10\.0\.0\.0"\)/],
    [['--bridge-subnet', '10.1.2.0/40'], /--bridge-subnet: .*IPv4 CIDR/],
    [['--bridge-name', 'this-name-is-too-long'], /--bridge-name: expected an interface name/],
    [['--listen', 'tcp://0.0.0.0:1'], /--listen: expected a TCP multiaddr such as \/ip4\/0\.0\.0\.0\/tcp\/3010 \(got "tcp:\/\/0\.0\.0\.0:1"\)/],
    [['--hypervisor', 'vbox'], /--hypervisor: expected one of "auto", "qemu", or "cloud-hypervisor" \(got "vbox"\)/],
  ] as const) {
    const bad = await form(fe, ['kit', 'operator', '--yes', '--output', join(fe.dir, 'x.toml'), ...args])
    t.equal(bad.code, 1)
    t.match(bad.stderr, message)
  }
  t.match((await form(fe, ['kit', 'operator', '--yes', '--output', file])).stderr, /FILE_EXISTS/)
})

t.test('kit operator --set changes one setting, keeps the rest and the operator key', async (t) => {
  const fe = await makeEnv(t)
  const file = join(fe.dir, 'operator.toml')
  fe.env.FORM_PASSWORD = 'operator-pass'
  const TOML = (await import('@iarna/toml')).default
  const first = await form(fe, ['kit', 'operator', '--yes', '--output', file, '--vcpus', '8', '--bootstrap', '/ip4/127.0.0.1/tcp/3010/p2p/12D3KooWabc', '--json'])
  t.equal(first.code, 0, first.stderr)
  const { operatorAddress } = JSON.parse(first.stdout)
  const before = TOML.parse(await readFile(file, 'utf8')) as any
  t.notOk('disk_gb' in before.node.resources, 'resources not given are left to the node to measure')
  const keyBefore = await readFile(join(fe.configDir, 'operator-key.json'), 'utf8')

  const set = await form(fe, ['kit', 'operator', '--output', file, '--set', 'node.resources.disk_gb=200', '--set', 'node.hypervisor=qemu', '--set', 'net.announce=["/dns/n1.example/tcp/3010"]'])
  t.equal(set.code, 0, set.stderr)
  t.match(set.stdout, /updated .*operator\.toml: node\.resources\.disk_gb = 200, node\.hypervisor = "qemu", net\.announce = \["\/dns\/n1\.example\/tcp\/3010"\]/)
  const after = TOML.parse(await readFile(file, 'utf8')) as any
  t.same(after.node.resources, { vcpus: 8, disk_gb: 200 }, 'the other resource kept, the new one added')
  t.equal(after.node.hypervisor, 'qemu')
  t.same(after.net.bootstrap, before.net.bootstrap, 'the rest is kept')
  t.same(after.net.announce, ['/dns/n1.example/tcp/3010'])
  t.equal(after.kit.operator_keystore, before.kit.operator_keystore)
  t.equal(await readFile(join(fe.configDir, 'operator-key.json'), 'utf8'), keyBefore, 'the operator key is untouched')

  // what the node would refuse is refused before the file changes
  const bad = await form(fe, ['kit', 'operator', '--output', file, '--set', 'node.resources.vcpus=lots'])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /\[node\] resources\.vcpus: expected a number/)
  const typo = await form(fe, ['kit', 'operator', '--output', file, '--set', 'nod.hypervisor=qemu'])
  t.match(typo.stderr, /unknown table \[nod\]/)
  t.same(TOML.parse(await readFile(file, 'utf8')), after, 'the file did not change')
  t.match((await form(fe, ['kit', 'operator', '--output', file, '--set', 'novalue'])).stderr, /--set "novalue" is not key=value/)
  // the table of a removed plugin is warned about, as the node does, and kept
  const { appendFile, writeFile } = await import('node:fs/promises')
  const withOrphan = await readFile(file, 'utf8')
  await appendFile(file, '\n[hello]\ngreeting = "left by form plugin remove"\n')
  const orphan = await form(fe, ['kit', 'operator', '--output', file, '--set', 'node.hypervisor=auto'])
  t.equal(orphan.code, 0, orphan.stderr)
  t.match(orphan.stderr, /^warning: .*operator\.toml: unknown table \[hello\]: ignored$/m)
  t.match(TOML.parse(await readFile(file, 'utf8')), { node: { hypervisor: 'auto' }, hello: { greeting: 'left by form plugin remove' } })
  await writeFile(file, withOrphan)

  // a full rewrite (--force) keeps the key; an import over it needs --new-key
  const again = await form(fe, ['kit', 'operator', '--yes', '--force', '--output', file, '--json'])
  t.equal(again.code, 0, again.stderr)
  t.equal(JSON.parse(again.stdout).operatorAddress, operatorAddress, '--force rewrites the config, not the key')
  const pk = join(fe.dir, 'pk')
  await writeFile(pk, '0x' + '11'.repeat(32))
  const imp = await form(fe, ['kit', 'operator', '--yes', '--force', '--output', file, '--import-private-key-file', pk])
  t.equal(imp.code, 1)
  t.match(imp.stderr, /OPERATOR_KEY_EXISTS.*\n.*--new-key/)
  const replaced = await form(fe, ['kit', 'operator', '--yes', '--force', '--new-key', '--output', file, '--import-private-key-file', pk, '--json'])
  t.equal(replaced.code, 0, replaced.stderr)
  t.not(JSON.parse(replaced.stdout).operatorAddress, operatorAddress, '--new-key replaces it')
})

t.test('no output of the kit commands contains a private key or mnemonic', async (t) => {
  const all = captured.join('\n')
  t.ok(all.length > 500, 'output was captured')
  for (const s of secrets) t.notOk(all.includes(s), 'a secret leaked')
  t.notOk(all.includes(MNEMONIC.split(' ').slice(0, 4).join(' ')), 'not even part of the phrase')
})
