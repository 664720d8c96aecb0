// Flat ESLint config: one set of rules for the machine, the CLI, scripts and tests.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'out/**', 'node_modules/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
      'require-yield': 'off',
    },
  },
  {
    files: ['src/machine/**/*.ts'],
    rules: {
      // The machine knows nothing of VS Code or DAP (DESIGN.md, principles).
      'no-restricted-imports': ['error', { patterns: ['vscode', '@vscode/*'] }],
    },
  },
  {
    files: ['scripts/**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
);
