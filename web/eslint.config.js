// The pages' scripts run in phone browsers as plain ES modules (no build
// step); the tests run under node's own test runner.
import js from '@eslint/js';
import globals from 'globals';

export default [
  { ignores: ['node_modules/'] },
  js.configs.recommended,
  {
    files: ['static/js/**/*.js'],
    languageOptions: { ecmaVersion: 2022, sourceType: 'module', globals: globals.browser },
    rules: {
      'no-unused-vars': ['error', { args: 'after-used', caughtErrors: 'none' }],
      eqeqeq: ['error', 'always'],
      'no-var': 'error',
      'prefer-const': 'error',
      // Text from people and the server is set as text, never parsed as markup.
      'no-restricted-properties': ['error',
        { property: 'innerHTML', message: 'set textContent or build nodes with el()' },
        { property: 'outerHTML', message: 'set textContent or build nodes with el()' },
        { property: 'insertAdjacentHTML', message: 'build nodes with el()' }],
      'no-eval': 'error',
      'no-implied-eval': 'error',
    },
  },
  {
    files: ['tests/**/*.js', 'tests/**/*.mjs', 'eslint.config.js'],
    languageOptions: { ecmaVersion: 2022, sourceType: 'module', globals: globals.node },
  },
];
