#!/usr/bin/env node
// A native-solc look-alike on top of solcjs, for ape-solidity, forge and slither.
//
// Supported:  --version | --standard-json [--base-path P] [--include-path P]... [--allow-paths ...]
// Everything is offline: imports resolve against the base path, include paths and
// the project's node_modules, never the network.
'use strict';

const fs = require('fs');
const path = require('path');

const PROJECT = path.resolve(__dirname, '..');

function loadSolc() {
  try {
    return require(path.join(PROJECT, 'node_modules', 'solc'));
  } catch (err) {
    process.stderr.write(
      'solc wrapper: the npm package "solc" is missing. Fix: run `make setup` (or `npm ci`) in ' +
        PROJECT + '\n');
    process.exit(3);
  }
}

function nativeVersion(solc) {
  // solcjs says "0.8.37+commit.f401782d.Emscripten.clang"; tools expect the native shape.
  const v = solc.version().replace('.Emscripten.clang', '.Linux.g++');
  return 'solc, the solidity compiler commandline interface\nVersion: ' + v + '\n';
}

function parseArgs(argv) {
  const opts = { version: false, standardJson: false, basePath: null, includePaths: [] };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    const next = () => { i += 1; return argv[i]; };
    if (a === '--version' || a === '-v') opts.version = true;
    else if (a === '--standard-json') opts.standardJson = true;
    else if (a === '--base-path') opts.basePath = next();
    else if (a.startsWith('--base-path=')) opts.basePath = a.split('=')[1];
    else if (a === '--include-path') opts.includePaths.push(next());
    else if (a === '--allow-paths') next(); // forge passes it; solcjs has no filesystem sandbox
    else if (a.startsWith('--allow-paths=')) { /* ignored, see above */ }
    else if (a === '-' ) { /* stdin marker */ }
    else {
      process.stderr.write('solc wrapper: unsupported argument ' + a +
        ' (only --version and --standard-json are supported)\n');
      process.exit(2);
    }
  }
  return opts;
}

function makeImportCallback(opts) {
  const roots = [opts.basePath || process.cwd(), ...opts.includePaths,
    path.join(PROJECT, 'node_modules'), PROJECT];
  return (importPath) => {
    const candidates = path.isAbsolute(importPath) ? [importPath]
      : roots.map((r) => path.join(r, importPath));
    for (const c of candidates) {
      if (fs.existsSync(c)) return { contents: fs.readFileSync(c, 'utf8') };
    }
    return { error: 'File not found: ' + importPath + ' (searched ' + roots.join(', ') + ')' };
  };
}

function main() {
  const solc = loadSolc();
  const opts = parseArgs(process.argv.slice(2));
  if (opts.version) { process.stdout.write(nativeVersion(solc)); return; }
  if (!opts.standardJson) {
    process.stderr.write('solc wrapper: pass --standard-json (input on stdin) or --version\n');
    process.exit(2);
  }
  const input = fs.readFileSync(0, 'utf8');
  const output = solc.compile(input, { import: makeImportCallback(opts) });
  process.stdout.write(output);
}

main();
