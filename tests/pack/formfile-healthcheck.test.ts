import t from 'tap'
import { formatDiagnostics, healthChecks, parseFormfile, printFormfile } from '../../plugins/pack/lib/formfile/index.js'
import { describeHealth } from '../../plugins/pack/lib/formfile/describe.js'

const BASE = 'USER username:webdev passwd:webpass123\n'
const parse = (src: string) => parseFormfile(BASE + src, { file: 'Formfile' })
const defaults = { intervalMs: 10_000, timeoutMs: 3_000, retries: 3, startPeriodMs: 30_000 }

t.test('HEALTHCHECK tcp, http and none parse into checks', async (t) => {
  const r = parse('EXPOSE 8080 5432\nHEALTHCHECK http /healthz 8080\nhealthcheck --interval=2s --timeout=500ms --retries=5 --start-period=1m30s tcp 5432')
  t.same(r.diagnostics, [])
  t.same(r.formfile!.healthchecks, [
    { kind: 'http', port: 8080, path: '/healthz', ...defaults },
    { kind: 'tcp', port: 5432, intervalMs: 2000, timeoutMs: 500, retries: 5, startPeriodMs: 90_000 },
  ])
  t.same(healthChecks(r.formfile!), r.formfile!.healthchecks, 'explicit checks replace the defaults')

  const opts = parse('EXPOSE 80\nHEALTHCHECK http "/status?full=1" 80 --retries=2')
  t.same(opts.formfile!.healthchecks, [{ kind: 'http', port: 80, path: '/status?full=1', ...defaults, retries: 2 }], 'options may follow the check; a quoted path')

  const none = parse('EXPOSE 80\nHEALTHCHECK none')
  t.same(none.diagnostics, [])
  t.same(none.formfile!.healthchecks, [], 'none: an empty list')
  t.same(healthChecks(none.formfile!), [], 'and no defaults')
})

t.test('without HEALTHCHECK every EXPOSEd TCP port gets a TCP check', async (t) => {
  const f = parse('EXPOSE 80 53/udp 8000-8010/tcp 80/tcp').formfile!
  t.equal(f.healthchecks, undefined)
  t.same(healthChecks(f), [
    { kind: 'tcp', port: 80, ...defaults },
    { kind: 'tcp', port: 8000, ...defaults },
  ], 'UDP is never probed, a range by its first port, a port once')
  t.same(healthChecks(parse('RUN true').formfile!), [], 'nothing exposed, nothing probed')
  t.match(describeHealth(f), [/^tcp 80 every 10s \(timeout 3s, unhealthy after 3 failures, start period 30s\) \(default for EXPOSE\)$/, /^tcp 8000/])
  t.same(describeHealth(parse('HEALTHCHECK none').formfile!), ['(none: HEALTHCHECK none)'])
})

t.test('the printed Formfile spells the checks out and parses back to the same', async (t) => {
  for (const src of ['EXPOSE 8080\nHEALTHCHECK --interval=1m30s http "/a\\"b" 8080\nHEALTHCHECK --timeout=250ms tcp 8080', 'EXPOSE 80\nHEALTHCHECK none', 'EXPOSE 80']) {
    const f = parse(src).formfile!
    t.ok(f, src)
    const printed = printFormfile(f)
    const again = parseFormfile(printed)
    t.same(again.diagnostics, [], printed)
    t.same(again.formfile!.healthchecks, f.healthchecks, src)
  }
  t.match(printFormfile(parse('EXPOSE 8080\nHEALTHCHECK http /healthz 8080').formfile!), /^HEALTHCHECK --interval=10s --timeout=3s --retries=3 --start-period=30s http \/healthz 8080$/m)
})

t.test('every mistake is a diagnostic naming its line, column and text, with a hint', async (t) => {
  const cases: [string, string, number, string, RegExp][] = [
    // source line, code, column, offending text, message
    ['HEALTHCHECK htp /healthz 80', 'invalid-healthcheck', 13, 'htp', /"htp" is not a kind of check/],
    ['HEALTHCHECK', 'missing-argument', 1, 'HEALTHCHECK', /HEALTHCHECK needs an argument/],
    ['HEALTHCHECK --retries=2', 'missing-argument', 13, '--retries=2', /needs a check: tcp, http or none/],
    ['HEALTHCHECK http /healthz', 'missing-argument', 18, '/healthz', /http needs a path and a port/],
    ['HEALTHCHECK tcp 80 81', 'too-many-arguments', 20, '81', /takes one port/],
    ['HEALTHCHECK tcp 0', 'invalid-port', 17, '0', /"0" is not a port \(1-65535\)/],
    ['HEALTHCHECK tcp http', 'invalid-port', 17, 'http', /not a port/],
    ['HEALTHCHECK http healthz 80', 'invalid-health-path', 18, 'healthz', /"healthz" is not a path to check/],
    ['HEALTHCHECK --intervall=5s tcp 80', 'invalid-healthcheck-option', 13, '--intervall=5s', /unknown HEALTHCHECK option "--intervall"/],
    ['HEALTHCHECK --retries tcp 80', 'invalid-healthcheck-option', 13, '--retries', /--retries needs a value/],
    ['HEALTHCHECK --retries=2 --retries=3 tcp 80', 'invalid-healthcheck-option', 25, '--retries=3', /given twice/],
    ['HEALTHCHECK --interval=10 tcp 80', 'invalid-duration', 13, '--interval=10', /must be a duration \(got "10"\)/],
    ['HEALTHCHECK --retries=two tcp 80', 'invalid-number', 13, '--retries=two', /must be a whole number/],
    ['HEALTHCHECK --interval=500ms tcp 80', 'out-of-range', 13, '--interval=500ms', /outside 1s-3600s/],
    ['HEALTHCHECK --retries=0 tcp 80', 'out-of-range', 13, '--retries=0', /outside 1-100/],
    ['HEALTHCHECK --interval=2s --timeout=5s tcp 80', 'out-of-range', 27, '--timeout=5s', /longer than the interval \(2s\)/],
    ['HEALTHCHECK none --retries=2', 'too-many-arguments', 18, '--retries=2', /none takes no port or option/],
  ]
  for (const [src, code, column, text, message] of cases) {
    const r = parse(`EXPOSE 80\n${src}`)
    t.equal(r.formfile, undefined, `${src}: no Formfile`)
    const errors = r.diagnostics.filter((d) => d.severity === 'error')
    t.equal(errors.length, 1, `${src}: one error`)
    t.match(errors[0], { code, line: 3, column, text, message, file: 'Formfile', hint: /\S/ }, src)
  }
  t.match(parse('HEALTHCHECK htp /x 80').diagnostics[0].hint, /did you mean http\?/)
  t.match(parse('HEALTHCHECK --intervall=5s tcp 80').diagnostics[0].hint, /did you mean --interval\?/)
})

t.test('problems across lines point at both', async (t) => {
  const dup = parse('EXPOSE 80\nHEALTHCHECK tcp 80\nHEALTHCHECK --retries=5 tcp 80')
  t.match(dup.diagnostics, [{ code: 'duplicate-healthcheck', line: 4, column: 25, message: 'tcp 80 is checked twice', related: { line: 3, column: 13 } }])
  const mixed = parse('EXPOSE 80\nHEALTHCHECK none\nHEALTHCHECK http /healthz 80')
  t.match(mixed.diagnostics, [{ code: 'healthcheck-none-mixed', line: 3, column: 13, related: { line: 4, column: 13, message: /http \/healthz on 80/ } }])
  const many = parse('EXPOSE 1-100\n' + Array.from({ length: 17 }, (_, i) => `HEALTHCHECK tcp ${i + 1}`).join('\n'))
  t.match(many.diagnostics, [{ code: 'too-many-healthchecks', line: 19, message: /at most 16 health checks/ }])

  const unexposed = parse('EXPOSE 80 9000/udp\nHEALTHCHECK tcp 81\nHEALTHCHECK tcp 9000')
  t.ok(unexposed.formfile, 'a check on a port that is not EXPOSEd is only a warning')
  t.match(unexposed.diagnostics, [
    { severity: 'warning', code: 'healthcheck-port-not-exposed', line: 3, message: 'tcp 81: port 81 is not EXPOSEd', hint: 'add EXPOSE 81 if the service listens there' },
    { severity: 'warning', code: 'healthcheck-port-not-exposed', line: 4 },
  ])
  const text = formatDiagnostics(dup.diagnostics, BASE + 'EXPOSE 80\nHEALTHCHECK tcp 80\nHEALTHCHECK --retries=5 tcp 80')
  t.match(text, /Formfile:4:25: error\[duplicate-healthcheck\]: tcp 80 is checked twice\n.*\n4 \| HEALTHCHECK --retries=5 tcp 80\n {2}\| {25}\^{6}\n {2}= note: Formfile:3:13: the first is here/)
})
