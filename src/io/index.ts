export { fileSystem, registerFileRouters, WEIGHTS_HASH_KEY } from './file-handler.js';
