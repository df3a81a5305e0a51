export { MicroClient, MicroHttpError, MicroClientError, endpointPath } from './client.js';
export type {
  MicroClientOptions,
  MicroClientErrorKind,
  CallOptions,
  StreamOptions,
  ClientStream,
  BidiStream,
  FetchLike,
  WebSocketLike,
  WebSocketConstructor,
  EndpointKind,
  EndpointTypes,
  EndpointMethod,
  ServiceClient,
  StreamKinds,
} from './client.js';
export { pythonClient, snakeCase } from './python.js';
export type { OpenApiDocument } from './python.js';
