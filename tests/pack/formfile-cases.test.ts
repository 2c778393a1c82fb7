import t from 'tap'
import { parseFormfile } from '../../plugins/pack/lib/formfile/index.js'

// Every good case must parse with no error; fragments get a USER so they form a complete Formfile.
const BASE = 'USER username:webdev passwd:webpass123\n'

const SEED_EXAMPLES: [string, string][] = [
  ['seed RUN', 'RUN apt-get update\nRUN echo "custom_setting=value" >> /etc/system.conf'],
  ['seed RUN chain', 'RUN apt-get update && apt-get install -y curl && rm -rf /var/lib/apt/lists/*'],
  ['seed COPY', 'COPY ./app /app\nCOPY ./config.json /etc/myapp/config.json'],
  ['seed INSTALL', 'INSTALL nginx python3 postgresql'],
  ['seed ENV', 'ENV --scope=system PATH=/usr/local/bin:$PATH\nENV --scope=user:webdev DB_PASSWORD=secret\nENV --scope=service:nginx NGINX_PORT=80'],
  ['seed ENTRYPOINT json', 'ENTRYPOINT ["nginx", "-g", "daemon off;"]'],
  ['seed ENTRYPOINT shell', 'ENTRYPOINT nginx -g "daemon off;"'],
  ['seed EXPOSE', 'EXPOSE 80 443 8080'],
  [
    'seed USER full',
    'USER username:myuser \\\n     passwd:mypassword \\\n     ssh_authorized_keys:"ssh-rsa AAAA... user@host" \\\n     lock_passwd:false \\\n     sudo:true \\\n     shell:/bin/bash \\\n     ssh_pwauth:true \\\n     disable_root:true \\\n     chpasswd_expire:true \\\n     groups:docker,sudo',
  ],
  [
    'seed USER second',
    'USER username:myuser \\\n     passwd:mypassword \\\n     sudo:true \\\n     ssh_authorized_keys:"ssh-rsa ..." \\\n     lock_passwd:false \\\n     shell:/bin/bash \\\n     ssh_pwauth:true \\\n     disable_root:true \\\n     groups:docker,users',
  ],
  ['seed nginx option 1', 'COPY ./my-nginx.conf /etc/nginx/nginx.conf\nRUN sudo systemctl restart nginx'],
  ['seed nginx stop', 'RUN sudo systemctl stop nginx'],
  ['seed nginx disable', 'RUN sudo systemctl stop nginx && sudo systemctl disable nginx'],
]
const SIMPLE_WEB_SERVER = `NAME hello-server

USER username:webdev passwd:webpass123 sudo:true ssh_authorized_keys:"ssh-rsa ..."

VCPU 2
MEM 2048
DISK 5

COPY ./app /app
INSTALL python3

WORKDIR /app
ENTRYPOINT ["python3", "server.py"]
`

const GOOD: [string, string][] = [
  ...SEED_EXAMPLES.map(([n, s]): [string, string] => [n, (s.startsWith('USER') ? '' : BASE) + s]),
  ['seed simple web server', SIMPLE_WEB_SERVER],
  ['lowercase keywords', 'name x\nuser username:a passwd:b\nvcpu 2\nmem 1024\ndisk 10'],
  ['mixed case keywords', 'Name x\nUsEr username:a passwd:b'],
  ['aliases CPU MEMORY STORAGE', BASE + 'CPU 4\nMEMORY 4096\nSTORAGE 20'],
  ['alias CORES', BASE + 'CORES 8'],
  ['comments and blank lines', '# a comment\n\n' + BASE + '   # indented comment\n\nRUN true'],
  ['comment inside continuation', 'USER username:a \\\n# a comment\n  passwd:b'],
  ['CRLF line endings', 'NAME x\r\nUSER username:a passwd:b\r\nRUN true\r\n'],
  ['BOM', '\uFEFFNAME x\nUSER username:a passwd:b'],
  ['no NAME', BASE],
  ['DESCRIPTION quoted', BASE + 'DESCRIPTION "my app, the best"'],
  ['DESCRIPTION unquoted words', BASE + 'DESCRIPTION my app is great'],
  ['GPU model', BASE + 'GPU rtx4090'],
  ['GPU with count', BASE + 'GPU a100:2'],
  ['lock_passwd without passwd', 'USER username:a lock_passwd:true'],
  ['booleans yes/no/1/0', 'USER username:a passwd:b sudo:yes ssh_pwauth:no disable_root:1 chpasswd_expire:0'],
  ['boolean upper case', 'USER username:a passwd:b sudo:TRUE'],
  ['username with underscore start', 'USER username:_svc passwd:b'],
  ['username with digits and dash', 'USER username:web-2 passwd:b'],
  ['username 32 chars', `USER username:${'a'.repeat(32)} passwd:b`],
  ['two users', 'USER username:a passwd:b\nUSER username:c passwd:d'],
  ['quoted password with spaces', 'USER username:a passwd:"correct horse battery"'],
  ['prehashed password', 'USER username:a passwd:$6$saltsalt$' + 'a'.repeat(86)],
  ['several ssh keys', 'USER username:a lock_passwd:true ssh_authorized_keys:"ssh-ed25519 AAAA a@b,ssh-rsa BBBB c@d"'],
  ['groups list', 'USER username:a passwd:b groups:docker,users,adm'],
  ['custom shell', 'USER username:a passwd:b shell:/usr/bin/zsh'],
  ['ENV default scope', BASE + 'ENV A=1 B=2'],
  ['ENV quoted value', BASE + 'ENV GREETING="hello world"'],
  ['ENV single quotes', BASE + "ENV MSG='it is fine'"],
  ['ENV empty value', BASE + 'ENV EMPTY='],
  ['ENV value with =', BASE + 'ENV OPTS=a=b'],
  ['ENV service scope with @', BASE + 'ENV --scope=service:getty@tty1 TERM=linux'],
  ['ENV user scope before USER line', 'ENV --scope=user:late X=1\nUSER username:late passwd:b'],
  ['ENTRYPOINT single word', BASE + 'ENTRYPOINT /usr/bin/app'],
  ['ENTRYPOINT json one element', BASE + 'ENTRYPOINT ["/app"]'],
  ['two ENTRYPOINTs warn only', BASE + 'ENTRYPOINT a\nENTRYPOINT b'],
  ['EXPOSE protocols', BASE + 'EXPOSE 53/udp 80/tcp 443'],
  ['EXPOSE range', BASE + 'EXPOSE 8000-8010 9000-9001/udp'],
  ['EXPOSE bounds', BASE + 'EXPOSE 1 65535'],
  ['COPY several sources to dir', BASE + 'COPY a.txt b.txt /dst/'],
  ['COPY json form', BASE + 'COPY ["./my file.txt", "/opt/my file.txt"]'],
  ['COPY only destination', BASE + 'COPY /app'],
  ['COPY no arguments with WORKDIR', BASE + 'WORKDIR /app\nCOPY'],
  ['COPY dot source', BASE + 'COPY . /app'],
  ['COPY inner dotdot staying inside', BASE + 'COPY a/../b /x'],
  ['RUN json form', BASE + 'RUN ["/bin/echo", "hi"]'],
  ['RUN multi-line', BASE + 'RUN apt-get update && \\\n    apt-get install -y curl'],
  ['INSTALL versions', BASE + 'INSTALL nginx=1.22.1-9 libc6'],
  ['WORKDIR nested', BASE + 'WORKDIR /srv/app/'],
  ['VCPU max', BASE + 'VCPU 128'],
  ['MEM min and max', BASE + 'MEM 512'],
  ['MEM max', BASE + 'MEM 256000'],
  ['DISK max', BASE + 'DISK 65535'],
  ['instruction with extra spaces', BASE + 'VCPU    4   '],
  ['tabs as separators', BASE + 'VCPU\t2'],
]

// [name, source, code, line, column]
const BAD: [string, string, string, number, number][] = [
  ['unknown instruction', BASE + 'FROM debian', 'unknown-instruction', 2, 1],
  ['typo NAMEE', 'NAMEE x\n' + BASE, 'unknown-instruction', 1, 1],
  ['typo in lower case', BASE + 'instal nginx', 'unknown-instruction', 2, 1],
  ['duplicate NAME', 'NAME a\n' + BASE + 'NAME b', 'duplicate-instruction', 3, 1],
  ['duplicate WORKDIR', BASE + 'WORKDIR /a\nWORKDIR /b', 'duplicate-instruction', 3, 1],
  ['duplicate VCPU via alias', BASE + 'VCPU 1\nCPU 2', 'duplicate-instruction', 3, 1],
  ['duplicate MEM', BASE + 'MEM 512\nMEMORY 1024', 'duplicate-instruction', 3, 1],
  ['duplicate DISK', BASE + 'DISK 5\nSTORAGE 6', 'duplicate-instruction', 3, 1],
  ['no USER', 'NAME x\nRUN true', 'missing-user', 2, 1],
  ['empty file', '', 'missing-user', 1, 1],
  ['NAME missing argument', BASE + 'NAME', 'missing-argument', 2, 1],
  ['NAME with space', BASE + 'NAME my app', 'too-many-arguments', 2, 9],
  ['NAME invalid chars', BASE + 'NAME my/app', 'invalid-name', 2, 6],
  ['VCPU not a number', BASE + 'VCPU two', 'invalid-number', 2, 6],
  ['VCPU zero', BASE + 'VCPU 0', 'out-of-range', 2, 6],
  ['VCPU too many', BASE + 'VCPU 129', 'out-of-range', 2, 6],
  ['MEM too small', BASE + 'MEM 256', 'out-of-range', 2, 5],
  ['MEM too big', BASE + 'MEM 256001', 'out-of-range', 2, 5],
  ['MEM with unit', BASE + 'MEM 2G', 'invalid-number', 2, 5],
  ['DISK too small', BASE + 'DISK 4', 'out-of-range', 2, 6],
  ['DISK too big', BASE + 'DISK 65536', 'out-of-range', 2, 6],
  ['DISK negative', BASE + 'DISK -5', 'invalid-number', 2, 6],
  ['GPU bad', BASE + 'GPU A100:x', 'invalid-gpu', 2, 5],
  ['GPU zero count', BASE + 'GPU a100:0', 'invalid-gpu', 2, 5],
  ['USER without username', 'USER passwd:x', 'missing-username', 1, 6],
  ['USER uppercase name', 'USER username:Bob passwd:x', 'invalid-username', 1, 6],
  ['USER starts with digit', 'USER username:1ab passwd:x', 'invalid-username', 1, 6],
  ['USER name too long', `USER username:${'a'.repeat(33)} passwd:x`, 'invalid-username', 1, 6],
  ['USER without passwd', 'USER username:a sudo:true', 'missing-passwd', 1, 6],
  ['USER empty passwd', 'USER username:a passwd:', 'missing-passwd', 1, 17],
  ['USER unknown option', 'USER username:a passwd:b sudoo:true', 'invalid-user-option', 1, 26],
  ['USER option without colon', 'USER username:a passwd:b admin', 'invalid-user-option', 1, 26],
  ['USER bad boolean', 'USER username:a passwd:b sudo:maybe', 'invalid-boolean', 1, 26],
  ['USER relative shell', 'USER username:a passwd:b shell:bash', 'invalid-shell', 1, 26],
  ['USER duplicate option', 'USER username:a passwd:b passwd:c', 'duplicate-user-option', 1, 26],
  ['USER bad group', 'USER username:a passwd:b groups:ok,Bad', 'invalid-group', 1, 26],
  ['duplicate username', 'USER username:a passwd:b\nUSER username:a passwd:c', 'duplicate-user', 2, 6],
  ['multi-line USER error on 3rd line', 'USER username:a \\\n  passwd:b \\\n  sudo:perhaps', 'invalid-boolean', 3, 3],
  ['unterminated quote', 'USER username:a passwd:"open', 'unterminated-quote', 1, 24],
  ['ENV not KEY=value', BASE + 'ENV JUSTKEY', 'invalid-env', 2, 5],
  ['ENV bad key', BASE + 'ENV 1A=x', 'invalid-env', 2, 5],
  ['ENV key with dash', BASE + 'ENV MY-KEY=x', 'invalid-env', 2, 5],
  ['ENV bad scope', BASE + 'ENV --scope=global A=1', 'invalid-env-scope', 2, 5],
  ['ENV scope only', BASE + 'ENV --scope=system', 'missing-argument', 2, 5],
  ['ENV unknown user scope', BASE + 'ENV --scope=user:ghost A=1', 'unknown-scope-user', 2, 5],
  ['ENV bad user name in scope', BASE + 'ENV --scope=user:Ghost A=1', 'invalid-env-scope', 2, 5],
  ['ENV missing argument', BASE + 'ENV', 'missing-argument', 2, 1],
  ['ENTRYPOINT bad json', BASE + 'ENTRYPOINT ["a", ]', 'invalid-json', 2, 12],
  ['ENTRYPOINT json not strings', BASE + 'ENTRYPOINT ["a", 1]', 'invalid-json', 2, 12],
  ['ENTRYPOINT empty json', BASE + 'ENTRYPOINT []', 'missing-argument', 2, 12],
  ['ENTRYPOINT single quotes json', BASE + "ENTRYPOINT ['nginx']", 'invalid-json', 2, 12],
  ['EXPOSE zero', BASE + 'EXPOSE 0', 'invalid-port', 2, 8],
  ['EXPOSE too big', BASE + 'EXPOSE 80 65536', 'invalid-port', 2, 11],
  ['EXPOSE bad protocol', BASE + 'EXPOSE 80/sctp', 'invalid-port', 2, 8],
  ['EXPOSE reversed range', BASE + 'EXPOSE 90-80', 'invalid-port', 2, 8],
  ['EXPOSE word', BASE + 'EXPOSE http', 'invalid-port', 2, 8],
  ['COPY absolute source', BASE + 'COPY /etc/passwd /x', 'path-escapes-context', 2, 6],
  ['COPY dotdot escape', BASE + 'COPY ../secret /x', 'path-escapes-context', 2, 6],
  ['COPY sneaky escape', BASE + 'COPY a/../../b /x', 'path-escapes-context', 2, 6],
  ['COPY relative destination', BASE + 'COPY a app', 'invalid-path', 2, 8],
  ['COPY several sources to file', BASE + 'COPY a b /dst', 'copy-destination-not-directory', 2, 10],
  ['COPY no args without WORKDIR', BASE + 'COPY', 'copy-without-destination', 2, 1],
  ['COPY json escape', BASE + 'COPY ["../x", "/y"]', 'path-escapes-context', 2, 6],
  ['WORKDIR relative', BASE + 'WORKDIR app', 'invalid-path', 2, 9],
  ['WORKDIR two args', BASE + 'WORKDIR /a /b', 'too-many-arguments', 2, 12],
  ['INSTALL bad package', BASE + 'INSTALL Nginx', 'invalid-package', 2, 9],
  ['INSTALL shell injection', BASE + 'INSTALL nginx;rm', 'invalid-package', 2, 9],
  ['RUN missing command', BASE + 'RUN', 'missing-argument', 2, 1],
  ['RUN bad json', BASE + 'RUN ["a"', 'invalid-json', 2, 5],
  ['dangling continuation at end', BASE + 'RUN echo \\', 'dangling-continuation', 2, 10],
  ['VCPU over devnet? (default profile ok, see profile test)', BASE + 'VCPU 1\nVCPU 2', 'duplicate-instruction', 3, 1],
]

t.test(`${GOOD.length} good Formfiles parse without errors`, async (t) => {
  for (const [name, source] of GOOD) {
    const r = parseFormfile(source, { contextDir: '/tmp/My Project' })
    t.same(r.diagnostics.filter((d) => d.severity === 'error'), [], name)
    t.ok(r.formfile, `${name}: a Formfile`)
  }
})

t.test(`${BAD.length} bad Formfiles report the code, line and column`, async (t) => {
  for (const [name, source, code, line, column] of BAD) {
    const r = parseFormfile(source)
    t.equal(r.formfile, undefined, `${name}: no Formfile`)
    const d = r.diagnostics.find((x) => x.severity === 'error')
    t.match(d, { code, line, column }, `${name}: ${code} at ${line}:${column}`)
    t.ok(d?.hint, `${name}: has a hint`)
  }
})

t.test('the table has at least 80 cases', async (t) => {
  t.ok(GOOD.length + BAD.length >= 80, `${GOOD.length + BAD.length} cases`)
})

t.test('the seed example parses to the expected structure', async (t) => {
  const { formfile } = parseFormfile(SIMPLE_WEB_SERVER)
  t.match(formfile, {
    name: 'hello-server',
    nameGenerated: false,
    resources: { vcpus: 2, memoryMb: 2048, diskGb: 5 },
    users: [{ username: 'webdev', sudo: true, lockPasswd: false, shell: '/bin/bash', sshPwauth: true, disableRoot: true, chpasswdExpire: true, sshAuthorizedKeys: ['ssh-rsa ...'], groups: [] }],
    workdir: '/app',
    entrypoint: { form: 'exec', argv: ['python3', 'server.py'] },
    steps: [{ kind: 'user', username: 'webdev', line: 3 }, { kind: 'copy', sources: ['app'], destination: '/app', line: 9 }, { kind: 'install', packages: ['python3'], line: 10 }, { kind: 'workdir', path: '/app', line: 12 }],
  })
  t.match(formfile!.users[0].passwordHash, /^\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}$/, 'the password is hashed')
  t.notMatch(JSON.stringify(formfile), /webpass123/, 'the plain password is not kept')
})

t.test('all errors of a file are reported, not just the first', async (t) => {
  const r = parseFormfile('FRM x\nVCPU 0\nEXPOSE 0\nUSER username:a passwd:b\nENV --scope=user:zz A=1\n')
  t.same(r.diagnostics.map((d) => [d.code, d.line]), [['unknown-instruction', 1], ['out-of-range', 2], ['invalid-port', 3], ['unknown-scope-user', 5]])
})

t.test('duplicate instructions point at both lines', async (t) => {
  const d = parseFormfile('NAME a\nUSER username:a passwd:b\nNAME b').diagnostics[0]
  t.match(d, { code: 'duplicate-instruction', line: 3, related: { line: 1, column: 1 } })
})

t.test('the name comes from the directory when NAME is absent', async (t) => {
  t.equal(parseFormfile(BASE, { contextDir: '/home/ada/My Cool_App!' }).formfile?.name, 'my-cool_app')
})

t.test('limit profiles are data: devnet refuses what default accepts', async (t) => {
  const src = BASE + 'VCPU 4\nMEM 8192\nDISK 10'
  t.equal(parseFormfile(src).diagnostics.length, 0)
  const dev = parseFormfile(src, { profile: 'devnet' })
  t.same(dev.diagnostics.map((d) => d.code), ['out-of-range', 'out-of-range', 'out-of-range'])
  t.match(dev.diagnostics[0].message, /VCPU 4 is outside 1-2/)
})

t.test('ENV scopes are kept apart and merged per scope', async (t) => {
  const { formfile } = parseFormfile(BASE + 'ENV A=1\nENV --scope=user:webdev B=2\nENV --scope=service:web C=3\nENV A=4 D="x y"')
  t.same(formfile!.env, { system: { A: '4', D: 'x y' }, users: { webdev: { B: '2' } }, services: { web: { C: '3' } } })
})

t.test('shell-form ENTRYPOINT keeps quoted words together', async (t) => {
  t.same(parseFormfile(BASE + 'ENTRYPOINT nginx -g "daemon off;"').formfile!.entrypoint, { form: 'shell', argv: ['nginx', '-g', 'daemon off;'], command: 'nginx -g "daemon off;"' })
})
