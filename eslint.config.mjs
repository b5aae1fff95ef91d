// Lint for correctness, not taste (prettier owns formatting): floating
// promises, type-only imports, unused code.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      '.tools/**',
      'proto/gen/**',
      'bench/results/**',
      'deploy/**/*.json',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // node:test's test()/describe() return promises the runner awaits itself.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowNumber: true, allowBoolean: true },
      ],
    },
  },
  {
    // Components talk through each other's public index.ts only (tests may
    // reach internals to test them). `common/` is a flat library of
    // single-concern modules, each its own entry point.
    files: [
      'cli/**/*.ts',
      'common/**/*.ts',
      'storage/**/*.ts',
      'proto/**/*.ts',
      'loader/**/*.ts',
      'trainer/**/*.ts',
      'scorer/**/*.ts',
      'bench/**/*.ts',
    ],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^(\\.\\./)+(loader|scorer|trainer|storage|proto|cli)/(?!index\\.js$).+',
              message:
                "Import another component through its public index.js (e.g. '../../loader/index.js'), not its internals.",
            },
          ],
        },
      ],
    },
  },
  {
    // Micro-benchmarks of one internal function (one ranged GET through
    // fetchRange on each path; the BatchPart encoder) reach it where it lives.
    files: ['bench/get.ts', 'bench/encode.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { ...tseslint.configs.disableTypeChecked.languageOptions, globals: globals.node },
  },
);
