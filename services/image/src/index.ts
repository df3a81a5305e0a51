export { image, MAX_INPUT_BYTES, MAX_INPUT_PIXELS, MAX_OUTPUT_BYTES, MAX_SIDE } from './definition.js';
export { service } from './handlers.js';
