// `formation-cli/sdk`: the types a plugin is written against. At run time form calls a plugin's default
// export with the values (PluginSdk: definePlugin, FormCommand, FormError, clipanion, typanion...), so
// that the plugin uses the host's copies: a class from another copy of form fails `instanceof`. Import
// types from here (`import type`, or JSDoc `import('formation-cli/sdk')`); only definePlugin and
// API_VERSION are values here, as they need no shared identity.
export { API_VERSION, definePlugin } from './plugin.js'
export type {
  CollectionDeclaration,
  CollectionRule,
  CollectionWriter,
  FormPlugin,
  HandleOf,
  PluginConfiguration,
  RunningService,
  ServiceContext,
  ServiceDefinition,
  ServiceHandles,
  ServiceHealth,
  ServiceName,
  ServiceState,
} from './plugin.js'
export type { PluginSdk } from './loader.js'
export type { FormContext } from './command.js'
export type { FormErrorOptions } from './errors.js'
export type { ApiHandler, ApiRequest, ApiRouter, HttpMethod, RouteAuth, RouteOptions } from './daemon/router.js'
// Instance types only: the classes themselves come with PluginSdk (`sdk.FormCommand`), and the
// declarations must not promise values this module does not export.
export type FormCommand = import('./command.js').FormCommand
export type FormError = import('./errors.js').FormError
export type ApiStream = import('./daemon/router.js').ApiStream
export type { Logger } from './log.js'
export type { Paths } from './paths.js'
