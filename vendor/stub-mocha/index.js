'use strict';
/*
 * Stub for mocha, installed by an npm override in the root package.json in place of the
 * mocha 2.5.3 that liboneandone (a dependency of pkgcloud, for the 1&1 provider) lists among its
 * run-time dependencies. liboneandone never requires it; the real one would install a test runner
 * and its tree (growl 1.9.2, minimist 0.0.8, debug 2.2.0, minimatch 0.3.0, diff 1.4.0, jade
 * 0.26.3, ...) with known critical and high advisories into every silver install.
 */
throw new Error(
  "mocha is not installed: silver replaces pkgcloud's run-time copy of it (via liboneandone) with " +
    'this stub (vendor/stub-mocha); nothing silver runs should load it',
);
