// Parses every ```mermaid block of the markdown on stdin with Mermaid's own
// parser (in jsdom, no browser): prints `ok <type>` or `error <message>`
// per block, exits 1 if any block fails. scripts/tools installs it next to
// the pinned `mermaid` and `jsdom` modules it imports.
import { JSDOM } from "jsdom";
import { readFileSync } from "node:fs";

const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");

const markdown = readFileSync(0, "utf8");
const blocks = markdown
  .split(/^```mermaid\n/m)
  .slice(1)
  .map((rest) => rest.split(/^```$/m)[0]);
let failed = blocks.length === 0;
for (const block of blocks) {
  try {
    const parsed = await mermaid.parse(block);
    console.log(`ok ${parsed.diagramType}`);
  } catch (e) {
    failed = true;
    console.log(`error ${String(e.message ?? e).split("\n").join(" | ")}`);
  }
}
process.exit(failed ? 1 : 0);
