'use strict';
// `require()` of this package, or of one of its entry points, lands here through the "require"
// condition of its exports: the package is ES modules only. The error says what to do instead.
const { name } = require('../package.json');

const err = new Error(
  `${name} is an ES module package and cannot be loaded with require(). ` +
    `Use \`import { ... } from '${name}'\` (or '${name}/...'), or from CommonJS \`await import('${name}')\`.`,
);
err.code = 'ERR_REQUIRE_ESM';
throw err;
