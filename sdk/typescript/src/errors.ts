import { ERROR_CODES, type ErrorCode, type WireError } from "./types.js";

/**
 * Codes the client itself raises for requests that got no reply:
 * - `disconnected`: the connection dropped while a request that is not safe
 *   to repeat was outstanding; it may or may not have been carried out.
 * - `timeout`: no reply within the request timeout.
 * - `closed`: the client was closed (close() or logout()).
 * - `not_connected`: the client is offline and will not reconnect.
 */
export type ClientErrorCode = "disconnected" | "timeout" | "closed" | "not_connected";

/** Every code a SwitchboardError may carry. */
export type SwitchboardErrorCode = ErrorCode | ClientErrorCode;

const serverCodes: ReadonlySet<string> = new Set(ERROR_CODES);

/**
 * An error reply from the server (code is one of its error codes), or one
 * the client raises (disconnected, timeout, closed, not_connected). An
 * unknown code from a newer server reads as `internal`.
 */
export class SwitchboardError extends Error {
  override readonly name = "SwitchboardError";
  readonly code: SwitchboardErrorCode;
  /** Present (and above 0) when waiting that long may help. */
  readonly retryAfterMs: number | undefined;
  /** The op that failed, when the error answers a request. */
  readonly op: string | undefined;

  constructor(code: SwitchboardErrorCode, message: string, opts: { retryAfterMs?: number; op?: string } = {}) {
    super(message);
    this.code = code;
    this.retryAfterMs = opts.retryAfterMs && opts.retryAfterMs > 0 ? opts.retryAfterMs : undefined;
    this.op = opts.op;
  }

  /** Builds the error of a server reply. */
  static fromWire(e: WireError, op?: string): SwitchboardError {
    const code = serverCodes.has(e.code) ? (e.code as ErrorCode) : "internal";
    const msg = code === e.code ? e.message : `${e.code}: ${e.message}`;
    return new SwitchboardError(code, msg || code, {
      ...(e.retry_after_ms !== undefined ? { retryAfterMs: e.retry_after_ms } : {}),
      ...(op !== undefined ? { op } : {}),
    });
  }

  /** Whether sending the same request again later may succeed. */
  get retryable(): boolean {
    switch (this.code) {
      case "unavailable":
      case "disconnected":
      case "timeout":
      case "rate_limited":
      case "internal":
        return true;
      case "muted":
      case "channel_muted":
        return this.retryAfterMs !== undefined;
      default:
        return false;
    }
  }
}

/** Whether err is a SwitchboardError with one of the codes. */
export function isSwitchboardError(err: unknown, ...codes: SwitchboardErrorCode[]): err is SwitchboardError {
  return err instanceof SwitchboardError && (codes.length === 0 || codes.includes(err.code));
}
