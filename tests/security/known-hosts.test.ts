import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { trustHostKeys } from '../../plugins/manage/lib/known-hosts.js'

/** The CLI's known_hosts is written from state: only an address and well-formed keys get in. */

t.test("an instance's keys replace that address's lines and nothing else", async (t) => {
  const dir = t.testdir()
  await writeFile(join(dir, 'known_hosts'), '198.18.0.9 ssh-ed25519 AAAAold\n198.18.0.7 ssh-ed25519 AAAAkeep\n')
  const file = await trustHostKeys(dir, '198.18.0.9', ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAInew', 'ssh-rsa bad key\n* ssh-ed25519 AAAAevil'])
  t.equal(await readFile(file, 'utf8'), '198.18.0.7 ssh-ed25519 AAAAkeep\n198.18.0.9 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAInew\n', 'old key gone, other host kept, a key with a line break refused')
  await t.rejects(trustHostKeys(dir, '*', ['ssh-ed25519 AAAAx']), { code: 'BAD_INSTANCE_ADDRESS' }, 'a pattern as address')
  await t.rejects(trustHostKeys(dir, '198.18.0.9\n* ', ['ssh-ed25519 AAAAx']), { code: 'BAD_INSTANCE_ADDRESS' })
})
