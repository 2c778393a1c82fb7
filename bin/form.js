#!/usr/bin/env node
// This preamble must parse and run on old Node releases: `npm link`, `npm install -g` and the installer
// put this file on PATH behind `#!/usr/bin/env node`, which may find Debian's Node 18 or NodeSource's 20. form needs 22+.
const major = Number(process.versions.node.split('.')[0])
if (major < 22) {
  const node = process.env.FORM_REEXEC ? undefined : await pinnedNode()
  if (!node) {
    process.stderr.write(`error: form needs Node.js 22 or newer (this is ${process.version}).\n  hint: reinstall form with npm (it brings Node 24 as its dependency "node"), or install a current Node.js\n`)
    process.exit(1)
  }
  process.exitCode = await reexec(node)
} else {
  // only this run was re-executed; a form that this one starts decides for itself
  delete process.env.FORM_REEXEC
  // `form --version` needs only the package manifest.
  if (process.argv.length === 3 && (process.argv[2] === '--version' || process.argv[2] === '-v')) {
    const { readFileSync } = await import('node:fs')
    process.stdout.write(JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version + '\n')
    process.exit(0)
  }
  // V8's code cache for our modules roughly halves start-up after the first run (Node >= 22.1).
  const { enableCompileCache } = await import('node:module')
  enableCompileCache?.()
  const { main } = await import('../dist/main.js')
  process.exitCode = await main(process.argv.slice(2))
}

/**
 * The Node this package pins: its dependency "node" (node_modules/node/bin/node, found the way
 * require finds it, so a hoisted copy counts), else node_modules/.bin/node next to the package.
 * Resolved from this file's real path, so a symlink on PATH (npm link) does not matter.
 */
async function pinnedNode() {
  const { existsSync, realpathSync } = await import('node:fs')
  const { createRequire } = await import('node:module')
  const { dirname, join } = await import('node:path')
  const { fileURLToPath } = await import('node:url')
  const self = realpathSync(fileURLToPath(import.meta.url))
  const candidates = []
  try {
    candidates.push(join(dirname(createRequire(self).resolve('node/package.json')), 'bin', 'node'))
  } catch {
    // not installed next to us
  }
  candidates.push(join(dirname(self), '..', 'node_modules', '.bin', 'node'))
  // its version is not checked here (that costs a start of Node); FORM_REEXEC stops a loop if it is old
  return candidates.find((file) => existsSync(file))
}

/**
 * Runs this file again under `node` and ends with its exit status. Node cannot exec(), so this process
 * stays as the child's parent: signals sent to it (kill, systemd) are passed on. A terminal's Ctrl-C
 * already reaches the whole foreground group, child included, so SIGINT/SIGQUIT are passed on only
 * when there is no controlling terminal (a second SIGINT would make `form node start` skip its clean stop).
 */
async function reexec(node) {
  const { spawn } = await import('node:child_process')
  const { closeSync, openSync } = await import('node:fs')
  const { fileURLToPath } = await import('node:url')
  const child = spawn(node, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, FORM_REEXEC: '1' } })
  const hasTerminal = () => {
    try {
      closeSync(openSync('/dev/tty', 'r'))
      return true
    } catch {
      return false
    }
  }
  for (const signal of ['SIGTERM', 'SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2']) {
    process.on(signal, () => {
      if ((signal === 'SIGINT' || signal === 'SIGQUIT') && hasTerminal()) return
      child.kill(signal)
    })
  }
  return new Promise((resolve) => {
    child.on('error', (error) => {
      process.stderr.write(`error: cannot run ${node}: ${error.message}\n`)
      resolve(1)
    })
    child.on('exit', (code, signal) => {
      if (signal) {
        // die of the same signal, so the caller sees what the child saw
        process.removeAllListeners(signal)
        process.kill(process.pid, signal)
      }
      resolve(code ?? 1)
    })
  })
}
