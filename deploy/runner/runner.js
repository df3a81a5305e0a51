import '/app/packages/server/dist/runtime/kubernetes/runner.js';
