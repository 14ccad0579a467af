export * from "./types.js";
export { SwitchboardError, isSwitchboardError, type ClientErrorCode, type SwitchboardErrorCode } from "./errors.js";
export { Client, connect, MAX_RATE_WAIT_MS, type ClientOptions, type CallOptions, type ConnectionStatus, type WatchEvent } from "./client.js";
export type { WebSocketConstructor, WebSocketLike } from "./transport.js";
export { ChatStore, createChatStore, newClientId, type LoginInput, type StoreOptions, type SendOptions } from "./store/store.js";
export type { Chat, ChatMessage, ChatState, ChatStatus, MessageStatus, SyncStatus, Thread } from "./store/state.js";
export { httpOrigin } from "./transport.js";
export { fullMessage, MESSAGE_EVENTS } from "./message.js";
