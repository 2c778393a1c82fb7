// A Formation plugin. form calls the default export with its SDK, so the plugin uses the same
// clipanion and typanion as the CLI and needs no dependencies of its own.
// Install it with `form plugin add ./templates/plugin` (or publish it to npm and add it by name).

/** @param {import('formation-cli/sdk').PluginSdk} sdk */
export default function plugin({ definePlugin, FormCommand, Command, Option, t, API_VERSION }) {
  class HelloCommand extends FormCommand {
    static paths = [['hello']]
    static usage = Command.Usage({
      category: 'Hello plugin',
      description: 'Greet someone (an example third-party command)',
      examples: [
        ['Greet the world', '$0 hello'],
        ['Greet Ada, as JSON', '$0 hello Ada --json'],
      ],
    })
    who = Option.String({ required: false })

    async run() {
      const greeting = `hello, ${this.who ?? 'world'}`
      this.print({ greeting }, greeting)
    }
  }

  return definePlugin({
    name: 'hello',
    version: '0.1.0',
    apiVersion: API_VERSION,
    commands: [HelloCommand],
    // State collections this plugin owns: every node enforces who may write each key and checks the
    // value against its schema (a bad one is rejected, OP_MALFORMED). Writers: 'owner' (any wallet,
    // its own keys), 'member' (admitted nodes only) or 'admin' (the network's genesis admins).
    collections: [
      {
        name: 'hello',
        description: 'greetings people leave',
        rules: [{ pattern: '{owner}/*', writer: 'owner', description: 'a wallet writes its greetings: hello/<address>/<name>', schema: t.isObject({ text: t.isString() }) }],
      },
    ],
    // [hello] in the operator config; every key has a default.
    configuration: {
      schema: t.isObject({ greeting: t.isString() }),
      defaults: { greeting: 'hello from a plugin service' },
    },
    services: [
      {
        name: 'hello',
        dependsOn: [],
        start(ctx) {
          const started = Date.now()
          // Served as GET /v1/hello/greeting on the node API.
          ctx.api.get('/greeting', () => ({ greeting: ctx.config.greeting }))
          ctx.log.info('hello service started')
          return {
            info: () => ({ greeting: ctx.config.greeting, upMs: Date.now() - started }),
            stop: () => ctx.log.info('hello service stopped'),
          }
        },
      },
    ],
  })
}
