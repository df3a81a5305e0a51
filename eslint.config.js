// ESLint flat config: the recommended rules of ESLint and typescript-eslint, without
// type information so `npm run lint` stays fast (tsc already checks the types).
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

// The Node.js globals the plain JavaScript files (scripts, configs) use. TypeScript files
// need none: typescript-eslint turns `no-undef` off for them, as tsc does that job.
const node = Object.fromEntries(
  [
    'process', 'console', 'Buffer', 'URL', 'URLSearchParams', 'AbortController', 'AbortSignal',
    'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'clearImmediate',
    'queueMicrotask', 'structuredClone', 'fetch', 'TextEncoder', 'TextDecoder', 'performance', 'globalThis',
  ].map((name) => [name, 'readonly']),
);

export default defineConfig(
  {
    ignores: ['**/node_modules/**', '**/dist/**', '**/*.d.ts', 'bench/results/**', 'test-artifacts/**', '**/.micro-test*/**'],
  },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 2023,
      sourceType: 'module',
      globals: node,
    },
    rules: {
      // `_name` marks a deliberately unused parameter or binding
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
    },
  },
);
