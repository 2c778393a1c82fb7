import t from 'tap'
import { table, formatDuration, colorEnabled } from '../../core/output.js'

t.test('table aligns columns', async (t) => {
  t.equal(table([['a', 'bbb'], ['cc', 'd']], ['X', 'Y']), 'X   Y\na   bbb\ncc  d\n')
})
t.test('durations', async (t) => {
  t.equal(formatDuration(250), '250ms')
  t.equal(formatDuration(1500), '1.5s')
  t.equal(formatDuration(125_000), '2m05s')
})
t.test('colour follows NO_COLOR and the TTY', async (t) => {
  t.equal(colorEnabled({ isTTY: true, write() {} }, { NO_COLOR: '1' }), false)
  t.equal(colorEnabled({ isTTY: true, write() {} }, {}), true)
  t.equal(colorEnabled({ isTTY: false, write() {} }, {}), false)
  t.equal(colorEnabled({ isTTY: false, write() {} }, { FORCE_COLOR: '1' }), true)
})
