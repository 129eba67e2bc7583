#!/usr/bin/env node
// Compares sdk/js/era_storage.d.ts with sdk/js/era_storage.js itself: every class the declarations
// export exists in the module; every static method declared exists as a function of the same kind
// (async generator or not) whose required parameter count (Function.length: the parameters before the
// first default) equals the declaration's; and the module exports no public class or static method
// that the declarations leave out. Prints one line per finding and 'N passed, N failed' last.
'use strict';
const path = require('path');
const fs = require('fs');
const ts = require('typescript');

const sdkDir = path.join(__dirname, '..', '..', 'sdk', 'js');
const dtsPath = path.join(sdkDir, 'era_storage.d.ts');
const mod = require(path.join(sdkDir, 'era_storage.js'));
const source = ts.createSourceFile(dtsPath, fs.readFileSync(dtsPath, 'utf8'), ts.ScriptTarget.ES2020, true);

const declared = new Map();  // class name -> Map(method -> {required, generator})
for (const node of source.statements) {
  if (!ts.isClassDeclaration(node) || !node.name) continue;
  const methods = new Map();
  for (const m of node.members) {
    if (!ts.isMethodDeclaration(m) || !m.modifiers?.some((x) => x.kind === ts.SyntaxKind.StaticKeyword)) continue;
    const required = m.parameters.filter((p) => !p.questionToken && !p.initializer && !p.dotDotDotToken).length;
    const ret = m.type ? m.type.getText(source) : '';
    methods.set(m.name.getText(source), { required, generator: /^AsyncGenerator</.test(ret) });
  }
  declared.set(node.name.text, methods);
}

let passed = 0;
let failed = 0;
const check = (ok, what) => {
  if (ok) passed += 1;
  else failed += 1;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
};

const AsyncGeneratorFunction = Object.getPrototypeOf(async function* () {}).constructor;
for (const [cls, methods] of declared) {
  const impl = mod[cls];
  check(typeof impl === 'function', `${cls} is exported by the module`);
  if (typeof impl !== 'function') continue;
  for (const [name, decl] of methods) {
    const fn = impl[name];
    check(typeof fn === 'function', `${cls}.${name} exists`);
    if (typeof fn !== 'function') continue;
    check(fn.length === decl.required,
          `${cls}.${name} takes ${decl.required} required parameter(s) (the module's: ${fn.length})`);
    check((fn instanceof AsyncGeneratorFunction) === decl.generator,
          `${cls}.${name} is ${decl.generator ? '' : 'not '}an async generator in both`);
  }
  for (const name of Object.getOwnPropertyNames(impl)) {
    if (['length', 'name', 'prototype'].includes(name) || name.startsWith('_')) continue;
    if (typeof impl[name] !== 'function') continue;
    check(methods.has(name), `${cls}.${name} (in the module) is declared`);
  }
}
for (const name of Object.keys(mod)) {
  if (name.startsWith('_')) continue;
  check(declared.has(name), `export ${name} (in the module) is declared`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
