export { MicroClient, MicroHttpError, MicroClientError, endpointPath } from './client.js';
export type { MicroClientOptions, CallOptions, FetchLike, WebSocketLike, WebSocketConstructor, EndpointTypes, ServiceClient } from './client.js';
export { pythonClient, snakeCase } from './python.js';
export type { OpenApiDocument } from './python.js';
