/**
 * The one error type of the project. `code` is stable (scripts match on it), `message` says what
 * happened, `hint` says what to do. User mistakes are FormErrors and print without a stack trace.
 */
export interface FormErrorOptions {
  hint?: string
  cause?: unknown
  /** process exit code when this error ends a command (default 1) */
  exitCode?: number
  /** structured detail for --json output (never secrets) */
  details?: unknown
  /** HTTP status when this error answers an API request (default 400) */
  httpStatus?: number
}

export class FormError extends Error {
  readonly code: string
  readonly hint?: string
  readonly exitCode: number
  readonly details?: unknown
  readonly httpStatus: number

  constructor(code: string, message: string, options: FormErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'FormError'
    this.code = code
    this.hint = options.hint
    this.exitCode = options.exitCode ?? 1
    this.details = options.details
    this.httpStatus = options.httpStatus ?? 400
  }

  toJSON(): { code: string; message: string; hint?: string; details?: unknown } {
    return { code: this.code, message: this.message, hint: this.hint, details: this.details }
  }
}

export function isFormError(error: unknown): error is FormError {
  return error instanceof FormError
}

/** Errno code of a Node system error, if any. */
export function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String((error as { code: unknown }).code) : undefined
}
