/** The README's CLI reference must match the CLI. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

describe("README", () => {
  it("its CLI reference is yargs' current --help output (run `npm run docs` after changing options)", async () => {
    const { cliReference, readmeWithReference } = await import("../scripts/readme-cli.ts");
    const readme = readFileSync("README.md", "utf8");
    expect(readme).toBe(readmeWithReference(readme, cliReference()));
  });
});
