// Builds the console's vendored browser assets into sandbox/web/static/vendor/:
//   codemirror.min.js          CodeMirror 6 + @codemirror/lang-sql (src/editor.js), one minified IIFE
//   codemirror.LICENSE.txt     the licences of every bundled package (all MIT)
// and into tests/vendor/ (not shipped with the package, only used by the browser tests):
//   axe.min.js, axe.LICENSE.txt  axe-core for the accessibility check (MPL-2.0)
// Run from web-src/: `npm ci && npm run build`. The outputs are committed; nothing is
// fetched at run time, and the Python package ships them as package data.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { copyFileSync, readFileSync, readdirSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

// CSP: the console allows no inline <style>. style-mod (CodeMirror's style injector) uses
// a constructable stylesheet (adoptedStyleSheets, which CSP does not govern) only inside a
// shadow root and a <style> tag on a document; this build makes it use the constructable
// sheet on the document too. One line, checked here so an update that moves it fails loudly.
const adoptOnDocument = {
  name: "style-mod-adopt-on-document",
  setup(b) {
    b.onLoad({ filter: /style-mod[\\/]src[\\/]style-mod\.js$/ }, async (args) => {
      const text = readFileSync(args.path, "utf8");
      const from = "if (!root.head && root.adoptedStyleSheets && win.CSSStyleSheet) {";
      if (!text.includes(from)) { throw new Error("style-mod changed: review the CSP patch in build.mjs"); }
      return { contents: text.replace(from, "if (root.adoptedStyleSheets && win.CSSStyleSheet) {"), loader: "js" };
    });
  },
};

const out = new URL("../sandbox/web/static/vendor/", import.meta.url).pathname;
const result = await build({
  entryPoints: ["src/editor.js"], bundle: true, minify: true, format: "iife", target: ["es2019"],
  outfile: join(out, "codemirror.min.js"), legalComments: "none", metafile: true, plugins: [adoptOnDocument],
  banner: { js: "/* CodeMirror 6 (MIT, see codemirror.LICENSE.txt) bundled for the sandbox console by web-src/build.mjs */" },
});

// Every package that ended up in the bundle, with its version and licence text.
const packages = new Map();
for (const input of Object.keys(result.metafile.inputs)) {
  const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (m) { packages.set(m[1], join("node_modules", m[1])); }
}
let licences = "Third-party code in codemirror.min.js, built by web-src/build.mjs from web-src/package-lock.json.\n";
for (const [name, dir] of [...packages].sort()) {
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const file = readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
  licences += `\n==== ${name} ${pkg.version} (${pkg.license}) ====\n`;
  licences += file ? readFileSync(join(dir, file), "utf8") : `License: ${pkg.license}\n`;
}
writeFileSync(join(out, "codemirror.LICENSE.txt"), licences);

const tests = new URL("../tests/vendor/", import.meta.url).pathname;
mkdirSync(tests, { recursive: true });
copyFileSync("node_modules/axe-core/axe.min.js", join(tests, "axe.min.js"));
copyFileSync("node_modules/axe-core/LICENSE", join(tests, "axe.LICENSE.txt"));

const sha = (f) => createHash("sha256").update(readFileSync(join(out, f))).digest("hex");
const manifest = {};
for (const f of ["codemirror.min.js", "codemirror.LICENSE.txt"]) { manifest[f] = sha(f); }
manifest.packages = Object.fromEntries([...packages.keys()].sort().map((n) =>
  [n, JSON.parse(readFileSync(join("node_modules", n, "package.json"), "utf8")).version]));
writeFileSync(join(out, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log(manifest);
