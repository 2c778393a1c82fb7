import { API_VERSION, definePlugin } from '../../core/plugin.js'

export default definePlugin({
  name: 'state',
  version: '0.1.0',
  apiVersion: API_VERSION,
  commands: [],
})
